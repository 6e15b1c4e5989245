package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// apiVersions are the kinds deploy/kubernetes may hold, with the API version
// each must use (the stable one on every supported cluster).
var apiVersions = map[string]string{
	"Namespace":           "v1",
	"ServiceAccount":      "v1",
	"Service":             "v1",
	"Secret":              "v1",
	"ConfigMap":           "v1",
	"Deployment":          "apps/v1",
	"PodDisruptionBudget": "policy/v1",
	"ServiceMonitor":      "monitoring.coreos.com/v1",
	"PrometheusRule":      "monitoring.coreos.com/v1",
}

// TestKubernetesFilesParse reads every YAML file under deploy/kubernetes:
// each document is a Kubernetes object (apiVersion, kind, metadata.name) of a
// known kind and version, or a kustomization whose every entry exists and
// which lists every other file of its folder.
func TestKubernetesFilesParse(t *testing.T) {
	root := deployPath(t, "kubernetes")
	files := globFiles(t, root, ".yaml", ".yml")
	if len(files) == 0 {
		t.Fatal("no manifests")
	}
	listed := map[string]bool{}
	var kustomizations []string
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		docs := yamlFile(t, f)
		if len(docs) == 0 {
			t.Errorf("%s: empty", rel)
		}
		for i, d := range docs {
			kind, api := str(d, "kind"), str(d, "apiVersion")
			if kind == "" || api == "" {
				t.Errorf("%s #%d: apiVersion and kind are required", rel, i)
				continue
			}
			if kind == "Kustomization" || kind == "Component" {
				kustomizations = append(kustomizations, f)
				if filepath.Base(f) != "kustomization.yaml" || !strings.HasPrefix(api, "kustomize.config.k8s.io/") {
					t.Errorf("%s: a %s must be kustomization.yaml with a kustomize.config.k8s.io apiVersion", rel, kind)
				}
				for _, key := range []string{"resources", "components"} {
					for _, e := range list(d, key) {
						p := filepath.Join(filepath.Dir(f), e.(string))
						if _, err := os.Stat(p); err != nil {
							t.Errorf("%s: %s entry %s: %v", rel, key, e, err)
						}
						listed[filepath.Clean(p)] = true
					}
				}
				continue
			}
			if want, ok := apiVersions[kind]; !ok {
				t.Errorf("%s #%d: kind %s is not in this test's table: add it with its apiVersion", rel, i, kind)
			} else if api != want {
				t.Errorf("%s #%d: %s has apiVersion %s, want %s", rel, i, kind, api, want)
			}
			if str(d, "metadata", "name") == "" {
				t.Errorf("%s #%d: %s without metadata.name", rel, i, kind)
			}
		}
	}
	for _, k := range kustomizations {
		entries, err := os.ReadDir(filepath.Dir(k))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			p := filepath.Join(filepath.Dir(k), e.Name())
			if !e.IsDir() && e.Name() != "kustomization.yaml" && strings.HasSuffix(e.Name(), ".yaml") && !listed[p] {
				t.Errorf("%s is not listed in %s", p, k)
			}
		}
	}
}

// baseObjects returns the objects of deploy/kubernetes/base by kind.
func baseObjects(tb testing.TB) map[string][]map[string]any {
	tb.Helper()
	out := map[string][]map[string]any{}
	for _, f := range globFiles(tb, deployPath(tb, "kubernetes", "base"), ".yaml") {
		for _, d := range yamlFile(tb, f) {
			out[str(d, "kind")] = append(out[str(d, "kind")], d)
		}
	}
	return out
}

// generatedConfig returns the literals of a configMapGenerator entry of the
// kustomization in dir.
func generatedConfig(tb testing.TB, dir, name string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	for _, d := range yamlFile(tb, filepath.Join(dir, "kustomization.yaml")) {
		for _, g := range list(d, "configMapGenerator") {
			if str(g, "name") != name {
				continue
			}
			for _, l := range list(g, "literals") {
				k, v, ok := strings.Cut(l.(string), "=")
				if !ok {
					tb.Fatalf("%s: literal %q is not KEY=VALUE", dir, l)
				}
				out[k] = v
			}
		}
	}
	return out
}

func matches(selector, labels map[string]any) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestDeploymentsHardenedAndProbed checks each Deployment of the base against
// what DESIGN.md §7 and the brief ask of it, and its companions: two
// replicas, probes on /healthz and /readyz through a declared port, non-root
// with a read-only root and no capabilities, resources, a PDB and a Service
// selecting its pods, settings from its ConfigMap and Secret.
func TestDeploymentsHardenedAndProbed(t *testing.T) {
	objs := baseObjects(t)
	base := deployPath(t, "kubernetes", "base")
	secrets := map[string]map[string]any{}
	for _, d := range yamlFile(t, deployPath(t, "kubernetes", "example", "secrets.example.yaml")) {
		secrets[str(d, "metadata", "name")] = mapping(d, "stringData")
	}
	roles := map[string]bool{}
	if len(objs["Deployment"]) != 2 {
		t.Fatalf("want the hub and bridge Deployments, got %d", len(objs["Deployment"]))
	}
	for _, dep := range objs["Deployment"] {
		name := str(dep, "metadata", "name")
		t.Run(name, func(t *testing.T) {
			if r, _ := path(dep, "spec", "replicas").(int); r < 2 {
				t.Errorf("replicas %v, want at least 2", path(dep, "spec", "replicas"))
			}
			podLabels := mapping(dep, "spec", "template", "metadata", "labels")
			selector := mapping(dep, "spec", "selector", "matchLabels")
			if !matches(selector, podLabels) {
				t.Errorf("selector %v does not select the pod labels %v", selector, podLabels)
			}
			pod := mapping(dep, "spec", "template", "spec")
			if path(pod, "automountServiceAccountToken") != false {
				t.Error("automountServiceAccountToken must be false: Connect never calls the Kubernetes API")
			}
			if path(pod, "securityContext", "runAsNonRoot") != true || str(pod, "securityContext", "seccompProfile", "type") != "RuntimeDefault" {
				t.Errorf("pod securityContext %v: want runAsNonRoot and the RuntimeDefault seccomp profile", path(pod, "securityContext"))
			}
			sa := str(pod, "serviceAccountName")
			if !slices.ContainsFunc(objs["ServiceAccount"], func(o map[string]any) bool { return str(o, "metadata", "name") == sa }) {
				t.Errorf("serviceAccountName %q is not in the base", sa)
			}
			containers := list(pod, "containers")
			if len(containers) != 1 {
				t.Fatalf("want one container, got %d", len(containers))
			}
			c := containers[0]
			args := list(c, "args")
			if len(args) != 2 || args[1] != "serve" || (args[0] != "hub" && args[0] != "bridge") {
				t.Fatalf("args %v, want [hub serve] or [bridge serve]", args)
			}
			role := args[0].(string)
			roles[role] = true
			prefix := "CONNECT_" + strings.ToUpper(role) + "_"
			sc := mapping(c, "securityContext")
			if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false || !slices.Contains(list(sc, "capabilities", "drop"), any("ALL")) {
				t.Errorf("container securityContext %v: want a read-only root, no privilege escalation, all capabilities dropped", sc)
			}
			for _, r := range []string{"requests.cpu", "requests.memory", "limits.memory"} {
				k, v, _ := strings.Cut(r, ".")
				if str(c, "resources", k, v) == "" {
					t.Errorf("resources.%s not set", r)
				}
			}
			ports := map[string]int{}
			for _, p := range list(c, "ports") {
				ports[str(p, "name")], _ = path(p, "containerPort").(int)
			}
			for probe, want := range map[string]string{"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
				got, port := str(c, probe, "httpGet", "path"), str(c, probe, "httpGet", "port")
				if got != want {
					t.Errorf("%s path %q, want %q", probe, got, want)
				}
				if _, ok := ports[port]; !ok {
					t.Errorf("%s port %q is not a named container port (%v)", probe, port, ports)
				}
			}
			ann := mapping(dep, "spec", "template", "metadata", "annotations")
			if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/path"] != "/metrics" || ann["prometheus.io/port"] != strconv.Itoa(ports["http"]) {
				t.Errorf("prometheus.io annotations %v do not point at /metrics on the http port %d", ann, ports["http"])
			}
			// Settings: the ConfigMap the container reads is generated by the
			// base, listens on the declared port; secrets exist in the example.
			for _, ef := range list(c, "envFrom") {
				cm := str(ef, "configMapRef", "name")
				cfg := generatedConfig(t, base, cm)
				if len(cfg) == 0 {
					t.Errorf("envFrom ConfigMap %q is not generated by the base", cm)
				}
				for k := range cfg {
					if !strings.HasPrefix(k, prefix) {
						t.Errorf("ConfigMap %s: %s is not a %s* setting", cm, k, prefix)
					}
				}
				if l := cfg[prefix+"LISTEN"]; l != ":"+strconv.Itoa(ports["http"]) {
					t.Errorf("%sLISTEN %q does not match the http containerPort %d", prefix, l, ports["http"])
				}
				if !strings.HasPrefix(cfg[prefix+"URL"], "https://") {
					t.Errorf("%sURL %q: the public URL should be https", prefix, cfg[prefix+"URL"])
				}
			}
			for _, e := range list(c, "env") {
				ref := mapping(e, "valueFrom", "secretKeyRef")
				if ref == nil {
					continue
				}
				if !strings.HasPrefix(str(e, "name"), prefix) {
					t.Errorf("env %s: not a %s* setting", str(e, "name"), prefix)
				}
				if _, ok := secrets[str(ref, "name")][str(ref, "key")]; !ok {
					t.Errorf("env %s: Secret %s key %s is not in example/secrets.example.yaml", str(e, "name"), str(ref, "name"), str(ref, "key"))
				}
			}
			var pdb, svc map[string]any
			for _, p := range objs["PodDisruptionBudget"] {
				if matches(mapping(p, "spec", "selector", "matchLabels"), podLabels) {
					pdb = p
				}
			}
			if pdb == nil {
				t.Error("no PodDisruptionBudget selects the pods")
			} else if m, _ := path(pdb, "spec", "minAvailable").(int); m < 1 || m >= 2 {
				t.Errorf("PDB minAvailable %v: want 1 of the 2 replicas", path(pdb, "spec", "minAvailable"))
			}
			for _, s := range objs["Service"] {
				if matches(mapping(s, "spec", "selector"), podLabels) {
					svc = s
				}
			}
			if svc == nil {
				t.Fatal("no Service selects the pods")
			}
			for _, p := range list(svc, "spec", "ports") {
				if _, ok := ports[str(p, "targetPort")]; !ok {
					t.Errorf("Service port %s targets %q, not a named container port", str(p, "name"), str(p, "targetPort"))
				}
			}
		})
	}
	if !roles["hub"] || !roles["bridge"] {
		t.Errorf("roles %v: want a hub and a bridge Deployment", roles)
	}
}

// kustomize builds a kustomization folder with `kubectl kustomize`; it skips
// when kubectl is not installed (no Debian package provides it).
func kustomize(tb testing.TB, dir string) []map[string]any {
	tb.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		tb.Skip("kubectl not on PATH: kustomize build not checked")
	}
	out, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg += "\n" + string(ee.Stderr)
		}
		tb.Fatalf("kubectl kustomize %s: %s", dir, msg)
	}
	return yamlDocs(tb, dir, out)
}

// TestKustomizeBuild builds the base and the example overlay and checks the
// rendered objects refer to each other correctly: generated ConfigMap names,
// Secrets and their keys, the image, the namespace, ServiceMonitors that find
// their Service and port, and the PrometheusRules.
func TestKustomizeBuild(t *testing.T) {
	base := kustomize(t, deployPath(t, "kubernetes", "base"))
	if len(base) == 0 {
		t.Fatal("the base renders nothing")
	}
	objs := kustomize(t, deployPath(t, "kubernetes", "example"))
	byKind := map[string]map[string]map[string]any{}
	for _, o := range objs {
		k := str(o, "kind")
		if byKind[k] == nil {
			byKind[k] = map[string]map[string]any{}
		}
		byKind[k][str(o, "metadata", "name")] = o
		if k != "Namespace" && str(o, "metadata", "namespace") != "connect" {
			t.Errorf("%s %s: namespace %q, want the overlay's connect", k, str(o, "metadata", "name"), str(o, "metadata", "namespace"))
		}
		if str(o, "metadata", "labels", "app.kubernetes.io/part-of") != "connect" && k != "Namespace" {
			t.Errorf("%s %s: no app.kubernetes.io/part-of label", k, str(o, "metadata", "name"))
		}
	}
	for _, dep := range byKind["Deployment"] {
		name := str(dep, "metadata", "name")
		for _, c := range list(dep, "spec", "template", "spec", "containers") {
			if img := str(c, "image"); img != "registry.example.org/connect:v0.1.0" {
				t.Errorf("%s: image %q, want the overlay's", name, img)
			}
			for _, ef := range list(c, "envFrom") {
				cm := byKind["ConfigMap"][str(ef, "configMapRef", "name")]
				if cm == nil || !strings.HasPrefix(str(ef, "configMapRef", "name"), name+"-") {
					t.Errorf("%s: envFrom %v is not the generated ConfigMap", name, ef)
					continue
				}
				data := stringMap(mapping(cm, "data"))
				for k, v := range generatedConfig(t, deployPath(t, "kubernetes", "example"), name) {
					if data[k] != v {
						t.Errorf("%s: %s=%q, want the overlay's %q (configMapGenerator merge)", name, k, data[k], v)
					}
				}
				if len(data) < 4 {
					t.Errorf("%s: the merged ConfigMap lost the base's settings: %v", name, data)
				}
			}
			for _, e := range list(c, "env") {
				ref := mapping(e, "valueFrom", "secretKeyRef")
				if ref == nil {
					continue
				}
				s := byKind["Secret"][str(ref, "name")]
				if _, ok := mapping(s, "stringData")[str(ref, "key")]; !ok {
					t.Errorf("%s: env %s refers to Secret %s key %s, which the build lacks", name, str(e, "name"), str(ref, "name"), str(ref, "key"))
				}
			}
		}
	}
	for name, sm := range byKind["ServiceMonitor"] {
		var found bool
		for _, svc := range byKind["Service"] {
			if !matches(mapping(sm, "spec", "selector", "matchLabels"), mapping(svc, "metadata", "labels")) {
				continue
			}
			for _, ep := range list(sm, "spec", "endpoints") {
				for _, p := range list(svc, "spec", "ports") {
					if str(p, "name") == str(ep, "port") {
						found = true
					}
				}
			}
			// The rules select job="<app.kubernetes.io/name>".
			if job := str(svc, "metadata", "labels", str(sm, "spec", "jobLabel")); job != name {
				t.Errorf("ServiceMonitor %s: the job label would be %q, the rules expect %q", name, job, name)
			}
		}
		if !found {
			t.Errorf("ServiceMonitor %s selects no Service port", name)
		}
	}
	if len(byKind["ServiceMonitor"]) != 2 || len(byKind["PrometheusRule"]) != 2 {
		t.Errorf("want 2 ServiceMonitors and 2 PrometheusRules, got %d and %d", len(byKind["ServiceMonitor"]), len(byKind["PrometheusRule"]))
	}
}

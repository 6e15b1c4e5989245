package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/elimity-com/scim/schema"

	"github.com/connectsso/connect/scim"
)

// referenceTypes completes the attribute table for /Schemas: RFC 7643 §2.3.7
// wants referenceTypes on every reference attribute, which the table leaves out.
var referenceTypes = map[string][]string{
	"profileUrl": {"external"},
	"$ref":       {"User", "Group"},
	"photos":     {"external"},
}

// attrJSON renders one table attribute in RFC 7643 §7 form.
func attrJSON(a scim.Attribute) map[string]any {
	m := map[string]any{
		"name":        a.Name,
		"type":        string(a.Type),
		"multiValued": a.MultiValued,
		"required":    a.Required,
		"caseExact":   a.CaseExact,
		"mutability":  orDefault(a.Mutability, scim.ReadWrite),
		"returned":    orDefault(string(a.Returned), string(scim.ReturnedDefault)),
		"uniqueness":  orDefault(a.Uniqueness, "none"),
		"description": a.Description,
	}
	if len(a.CanonicalVals) > 0 {
		m["canonicalValues"] = a.CanonicalVals
	}
	if a.Type == scim.TypeReference {
		if rt, ok := referenceTypes[a.Name]; ok {
			m["referenceTypes"] = rt
		} else {
			m["referenceTypes"] = []string{"uri"}
		}
	}
	if len(a.SubAttributes) > 0 {
		subs := make([]map[string]any, len(a.SubAttributes))
		for i, s := range a.SubAttributes {
			subs[i] = attrJSON(s)
		}
		m["subAttributes"] = subs
	}
	return m
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// toElimity converts one schema of the attribute table (the single source of
// truth) into elimity's schema model by way of its RFC 7643 JSON form, which
// elimity can read without the panicking constructors. extra attributes (the
// common id/externalId/meta) are added for validation only.
func toElimity(s *scim.Schema, extra []scim.Attribute) (schema.Schema, error) {
	attrs := make([]map[string]any, 0, len(s.Attributes)+len(extra))
	for _, a := range append(append([]scim.Attribute(nil), s.Attributes...), extra...) {
		attrs = append(attrs, attrJSON(a))
	}
	raw, err := json.Marshal(map[string]any{
		"id": s.ID, "name": s.Name, "description": s.Description, "attributes": attrs,
	})
	if err != nil {
		return schema.Schema{}, err
	}
	var out schema.Schema
	if err := json.Unmarshal(raw, &out); err != nil {
		return schema.Schema{}, fmt.Errorf("convert schema %s: %w", s.ID, err)
	}
	return out, nil
}

// resourceType is a served resource type with its elimity schemas.
type resourceType struct {
	rt *scim.ResourceType
	// core validates the core attributes of a body (common attributes included);
	// exts validate each extension's object.
	core schema.Schema
	exts map[string]schema.Schema
}

// discovery holds the prerendered discovery documents.
type discovery struct {
	schemas       []map[string]any // resource schemas, /Schemas order
	resourceTypes []map[string]any
	spc           map[string]any
}

func (h *handler) buildDiscovery() error {
	loc := func(parts ...string) string {
		return h.cfg.BaseURL + h.cfg.Prefix + "/" + strings.Join(parts, "/")
	}
	seen := map[string]bool{}
	for _, rt := range []*scim.ResourceType{scim.UserResourceType, scim.GroupResourceType} {
		core, err := toElimity(rt.Schema, scim.CommonAttributes())
		if err != nil {
			return err
		}
		r := &resourceType{rt: rt, core: core, exts: map[string]schema.Schema{}}
		exts := []map[string]any{}
		for _, s := range append([]*scim.Schema{rt.Schema}, rt.Extensions...) {
			es, err := toElimity(s, nil)
			if err != nil {
				return err
			}
			if s != rt.Schema {
				r.exts[s.ID] = es
				exts = append(exts, map[string]any{"schema": s.ID, "required": false})
			}
			if seen[s.ID] {
				continue
			}
			seen[s.ID] = true
			doc := es.ToMap()
			doc["meta"] = map[string]any{"resourceType": "Schema", "location": loc("Schemas", s.ID)}
			h.disc.schemas = append(h.disc.schemas, doc)
		}
		h.types[rt.Name] = r
		h.disc.resourceTypes = append(h.disc.resourceTypes, map[string]any{
			"schemas":          []string{scim.SchemaResourceType},
			"id":               rt.Name,
			"name":             rt.Name,
			"description":      rt.Schema.Description,
			"endpoint":         rt.Endpoint,
			"schema":           rt.Schema.ID,
			"schemaExtensions": exts,
			"meta":             map[string]any{"resourceType": "ResourceType", "location": loc("ResourceTypes", rt.Name)},
		})
	}
	// elimity gap: its ServiceProviderConfig hard-codes sort, etag and
	// changePassword as unsupported and knows no RFC 9865 pagination block.
	h.disc.spc = map[string]any{
		"schemas":          []string{scim.SchemaServiceProvider},
		"documentationUri": "https://github.com/connectsso/connect",
		"patch":            map[string]any{"supported": true},
		"bulk":             map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
		"filter":           map[string]any{"supported": true, "maxResults": h.cfg.MaxPageSize},
		"changePassword":   map[string]any{"supported": h.cfg.HashPassword != nil},
		"sort":             map[string]any{"supported": true},
		"etag":             map[string]any{"supported": true},
		"pagination": map[string]any{
			"cursor":                  true,
			"index":                   true,
			"defaultPaginationMethod": "index",
			"defaultPageSize":         h.cfg.DefaultPageSize,
			"maxPageSize":             h.cfg.MaxPageSize,
			"cursorTimeout":           int(h.cfg.ChangesRetention.Seconds()),
		},
		"authenticationSchemes": []map[string]any{{
			"type":        "oauthbearertoken",
			"name":        "Bearer token",
			"description": "A hub API token (connect hub tokens create) sent as Authorization: Bearer <token>.",
			"specUri":     "https://www.rfc-editor.org/rfc/rfc6750",
			"primary":     true,
		}},
		"meta": map[string]any{"resourceType": "ServiceProviderConfig", "location": loc("ServiceProviderConfig")},
	}
	return nil
}

// listOf wraps static documents in a ListResponse (itemsPerPage = returned).
func listOf(docs []map[string]any) scim.ListResponse {
	res := make([]any, len(docs))
	for i, d := range docs {
		res[i] = d
	}
	return scim.ListResponse{
		Schemas: []string{scim.SchemaListResponse}, TotalResults: len(docs),
		StartIndex: 1, ItemsPerPage: len(docs), Resources: res,
	}
}

func (h *handler) serveSchemas(w http.ResponseWriter, r *http.Request, id string) {
	if id == "" {
		writeJSON(w, http.StatusOK, listOf(h.disc.schemas))
		return
	}
	id, _ = url.PathUnescape(id)
	for _, d := range h.disc.schemas {
		if strings.EqualFold(d["id"].(string), id) {
			writeJSON(w, http.StatusOK, d)
			return
		}
	}
	h.writeError(w, r, scim.Errorf(http.StatusNotFound, "", "no schema %q", id))
}

func (h *handler) serveResourceTypes(w http.ResponseWriter, r *http.Request, id string) {
	if id == "" {
		writeJSON(w, http.StatusOK, listOf(h.disc.resourceTypes))
		return
	}
	for _, d := range h.disc.resourceTypes {
		if strings.EqualFold(d["id"].(string), id) {
			writeJSON(w, http.StatusOK, d)
			return
		}
	}
	h.writeError(w, r, scim.Errorf(http.StatusNotFound, "", "no resource type %q", id))
}

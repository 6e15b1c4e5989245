package bridge

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/connectsso/connect/bridge/state"
)

// Task names.
const (
	TaskUsers       = "users"
	TaskCollections = "collections"
	TaskCleanup     = "cleanup"
)

// Tasks lists the tasks in the order a full run performs them.
var Tasks = []string{TaskUsers, TaskCollections, TaskCleanup}

// Action is what a plan item does.
type Action string

// Plan actions.
const (
	ActCreate    Action = "create"    // a new connect account
	ActUpdate    Action = "update"    // changed fields of a linked account
	ActLink      Action = "link"      // account mapping: a local account becomes a connect account
	ActSuspend   Action = "suspend"   // suspended by Connect (hub inactive, or removal action)
	ActUnsuspend Action = "unsuspend" // reactivated: Connect had suspended it
	ActRestore   Action = "restore"   // undeleted: back in scope within the grace period
	ActDelete    Action = "delete"    // soft delete (purged after the grace period)
	ActKeep      Action = "keep"      // out of scope, kept (removal action keep)
	ActRefuse    Action = "refuse"    // not synced: ambiguous or privileged mapping, conflict
	ActPurge     Action = "purge"     // soft-deleted account removed for good
	ActGroupPut  Action = "group"     // a locked local group created or renamed
	ActMembers   Action = "members"   // a group's members changed
	ActGroupDel  Action = "group-delete"
)

// Item is one line of a plan.
type Item struct {
	Action Action `json:"action"`
	// Kind is "user" or "group".
	Kind  string `json:"kind"`
	HubID string `json:"hubId,omitempty"`
	// LocalID and Name are the local account (username) or group.
	LocalID string `json:"localId,omitempty"`
	Name    string `json:"name,omitempty"`
	// HubName is the hub's userName or displayName.
	HubName string   `json:"hubName,omitempty"`
	Fields  []string `json:"fields,omitempty"`
	// Rule says which rule made the item.
	Rule string `json:"rule"`
	// Destructive items wait for the listing to be complete and the valves.
	Destructive bool `json:"destructive,omitempty"`
	// Reason is the hub's change reason for feed removals (deleted, out_of_scope).
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
	Done   bool   `json:"done,omitempty"`
}

// MaxPlanItems bounds the non-destructive items a stored plan keeps (the counts
// are always complete; destructive items are always all kept).
const MaxPlanItems = 1000

// Plan is what one task run decided, stored as the task's plan in State.
type Plan struct {
	ID      string    `json:"id"`
	Server  string    `json:"server"`
	Task    string    `json:"task"`
	Mode    string    `json:"mode"` // full, changes, modified, approved
	Created time.Time `json:"created"`
	Status  string    `json:"status"` // held, approved, rejected, applied, dry-run, failed
	// Reasons say why the plan is held (one per valve that tripped) or failed.
	Reasons []string `json:"reasons,omitempty"`
	// Counts has every planned item by action, kept or not.
	Counts map[Action]int `json:"counts"`
	// Failed counts items whose write failed, by action.
	Failed    map[Action]int `json:"failed,omitempty"`
	Items     []Item         `json:"items"`
	Truncated int            `json:"truncated,omitempty"`
	// Complete reports whether the listing finished (full runs).
	Complete bool `json:"complete"`
	// Listed is how many resources the source listed or changed; Known how many
	// local accounts (or groups) of this server there were before the run.
	Listed int   `json:"listed"`
	Known  int64 `json:"known"`
	// Duration of the run.
	Duration time.Duration `json:"duration"`
}

// Plan statuses beyond state.PlanStatus.
const (
	StatusDryRun = "dry-run"
	StatusFailed = "failed"
)

func newPlanID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newPlan(server, task, mode string, now time.Time) *Plan {
	return &Plan{ID: newPlanID(), Server: server, Task: task, Mode: mode, Created: now, Counts: map[Action]int{}}
}

// add records an item. Destructive items are always kept.
func (p *Plan) add(it Item) *Item {
	p.Counts[it.Action]++
	if it.Destructive || len(p.Items) < MaxPlanItems {
		p.Items = append(p.Items, it)
		return &p.Items[len(p.Items)-1]
	}
	p.Truncated++
	return nil
}

func (p *Plan) fail(a Action) {
	if p.Failed == nil {
		p.Failed = map[Action]int{}
	}
	p.Failed[a]++
}

// Held reports whether the plan waits for an operator.
func (p *Plan) Held() bool { return p.Status == string(state.PlanHeld) }

// Destructive returns the destructive items not yet done.
func (p *Plan) Destructive() []Item {
	var out []Item
	for _, it := range p.Items {
		if it.Destructive && !it.Done {
			out = append(out, it)
		}
	}
	return out
}

// Total is the number of planned items.
func (p *Plan) Total() int {
	n := 0
	for _, c := range p.Counts {
		n += c
	}
	return n
}

func (p *Plan) encode() ([]byte, error) { return json.Marshal(p) }

// DecodePlan reads a stored plan.
func DecodePlan(sp state.Plan) (*Plan, error) {
	var p Plan
	if err := json.Unmarshal(sp.Data, &p); err != nil {
		return nil, fmt.Errorf("decode plan %s: %w", sp.ID, err)
	}
	p.ID, p.Task, p.Status = sp.ID, sp.Task, string(sp.Status)
	if sp.Reason != "" && len(p.Reasons) == 0 {
		p.Reasons = []string{sp.Reason}
	}
	if p.Counts == nil {
		p.Counts = map[Action]int{}
	}
	return &p, nil
}

// Summary is one line: counts by action.
func (p *Plan) Summary() string {
	if p.Total() == 0 {
		return "nothing to do"
	}
	acts := make([]string, 0, len(p.Counts))
	for a := range p.Counts {
		acts = append(acts, string(a))
	}
	sort.Strings(acts)
	var parts []string
	for _, a := range acts {
		s := fmt.Sprintf("%s %d", a, p.Counts[Action(a)])
		if f := p.Failed[Action(a)]; f > 0 {
			s += fmt.Sprintf(" (%d failed)", f)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// WriteTable prints the plan as a table for people.
func (p *Plan) WriteTable(w io.Writer) error { return p.WriteTableN(w, 0) }

// WriteTableN prints the plan with at most limit items (0: all): destructive
// and failed items first, so a long plan still shows what matters.
func (p *Plan) WriteTableN(w io.Writer, limit int) error {
	fmt.Fprintf(w, "plan %s  server %s  task %s  mode %s  status %s\n", p.ID, p.Server, p.Task, p.Mode, p.Status)
	for _, r := range p.Reasons {
		fmt.Fprintf(w, "  held: %s\n", r)
	}
	fmt.Fprintf(w, "  %s\n", p.Summary())
	items := p.Items
	hidden := 0
	if limit > 0 && len(items) > limit {
		items = append([]Item(nil), items...)
		sort.SliceStable(items, func(i, j int) bool {
			return (items[i].Destructive || items[i].Error != "") && !(items[j].Destructive || items[j].Error != "")
		})
		hidden = len(items) - limit
		items = items[:limit]
	}
	if len(items) > 0 {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACTION\tKIND\tNAME\tHUB\tFIELDS\tRULE\tERROR")
		for _, it := range items {
			name := it.Name
			if name == "" {
				name = "-"
			}
			hub := it.HubName
			if hub == "" {
				hub = it.HubID
			}
			fields := strings.Join(it.Fields, ",")
			if fields == "" {
				fields = "-"
			}
			act := string(it.Action)
			if it.Done {
				act += " ✓"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", act, it.Kind, name, hub, fields, it.Rule, it.Error)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if hidden > 0 {
		fmt.Fprintf(w, "  … %d more items not shown (--json shows the stored items)\n", hidden)
	}
	if p.Truncated > 0 {
		fmt.Fprintf(w, "  … and %d more non-destructive items not stored (counted above)\n", p.Truncated)
	}
	return nil
}

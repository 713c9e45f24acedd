package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
)

// A PromQL checker for the expressions of docs/monitoring: Prometheus's
// own parser (github.com/prometheus/prometheus/promql/parser) would bring
// some 250 modules into go.mod, so this one checks what a typo breaks in
// the subset those files use: balanced brackets, known functions and
// keywords, label matchers, durations, and it returns the metric names the
// expression reads so that a test can check that a node exports them.

// promFuncs are the PromQL functions and aggregations the docs may use.
var promFuncs = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "topk": true, "bottomk": true, "quantile": true,
	"rate": true, "irate": true, "increase": true, "delta": true, "deriv": true, "histogram_quantile": true,
	"time": true, "abs": true, "absent": true, "clamp_min": true, "clamp_max": true, "vector": true, "scalar": true,
	"max_over_time": true, "min_over_time": true, "avg_over_time": true, "count_over_time": true, "changes": true, "resets": true,
}

// promGrouping are the keywords followed by a list of label names.
var promGrouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// promOperators are the keyword binary operators and modifiers.
var promOperators = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true}

// promMetrics checks expr and returns the metric names it reads.
func promMetrics(expr string) ([]string, error) {
	var names []string
	var stack []byte
	closing := map[byte]byte{')': '(', ']': '[', '}': '{'}
	i := 0
	for i < len(expr) {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == ',' && len(stack) > 0:
			i++
		case c == '(':
			stack = append(stack, c)
			i++
		case c == '[':
			end := strings.IndexByte(expr[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unclosed [ at %d", i)
			}
			if _, err := model.ParseDuration(expr[i+1 : i+end]); err != nil {
				return nil, fmt.Errorf("range [%s]: %v", expr[i+1:i+end], err)
			}
			i += end + 1
		case c == '{':
			end, err := promMatchers(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == ')' || c == ']' || c == '}':
			if len(stack) == 0 || stack[len(stack)-1] != closing[c] {
				return nil, fmt.Errorf("unbalanced %c at %d", c, i)
			}
			stack = stack[:len(stack)-1]
			i++
		case c == '"':
			end := strings.IndexByte(expr[i+1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unclosed string at %d", i)
			}
			i += end + 2
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (expr[i] >= '0' && expr[i] <= '9' || expr[i] == '.' || expr[i] == 'e') {
				i++
			}
		case strings.IndexByte("+-*/%^=!<>", c) >= 0:
			i++
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			next := strings.TrimLeft(expr[j:], " ")
			switch {
			case promGrouping[word]:
				if !strings.HasPrefix(next, "(") {
					return nil, fmt.Errorf("%s without a label list", word)
				}
				end := strings.IndexByte(next, ')')
				if end < 0 {
					return nil, fmt.Errorf("unclosed label list after %s", word)
				}
				j = len(expr) - len(next) + end + 1
			case promOperators[word]:
			case promFuncs[word] && (strings.HasPrefix(next, "by") || strings.HasPrefix(next, "without")):
				// an aggregation's grouping comes first: sum by (x) (...)
			case strings.HasPrefix(next, "("):
				if !promFuncs[word] {
					return nil, fmt.Errorf("unknown function %s", word)
				}
			default:
				if promFuncs[word] {
					return nil, fmt.Errorf("function %s without arguments", word)
				}
				names = append(names, word)
			}
			i = j
		default:
			return nil, fmt.Errorf("unexpected %q at %d", c, i)
		}
	}
	if len(stack) > 0 {
		return nil, fmt.Errorf("unclosed %c", stack[len(stack)-1])
	}
	if len(names) == 0 && !strings.Contains(expr, "time()") {
		return nil, fmt.Errorf("reads no metric")
	}
	return names, nil
}

// promMatchers checks the label matchers of the { at expr[i] and returns
// the index after its }.
func promMatchers(expr string, i int) (int, error) {
	end := strings.IndexByte(expr[i:], '}')
	if end < 0 {
		return 0, fmt.Errorf("unclosed { at %d", i)
	}
	for _, m := range strings.Split(expr[i+1:i+end], ",") {
		m = strings.TrimSpace(m)
		k := strings.IndexAny(m, "=!")
		if k <= 0 {
			return 0, fmt.Errorf("matcher %q: want label, operator, quoted value", m)
		}
		name, rest := strings.TrimSpace(m[:k]), m[k:]
		op := ""
		for _, o := range []string{"=~", "!~", "!=", "="} {
			if strings.HasPrefix(rest, o) {
				op = o
				break
			}
		}
		val := strings.TrimSpace(strings.TrimPrefix(rest, op))
		if op == "" || !model.LabelName(name).IsValidLegacy() || len(val) < 2 || val[0] != '"' || val[len(val)-1] != '"' {
			return 0, fmt.Errorf("matcher %q: want label, operator, quoted value", m)
		}
	}
	return i + end + 1, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdent(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

func TestPromMetrics(t *testing.T) {
	for _, tt := range []struct {
		expr, want, err string
	}{
		{expr: `max(atoll_a) > 0`, want: "atoll_a"},
		{expr: `sum by (code) (rate(atoll_b{code="5xx", x!~"y"}[5m])) / sum(rate(atoll_c[1h]))`, want: "atoll_b atoll_c"},
		{expr: `min by (d, s) (atoll_e) - time() < 14 * 86400`, want: "atoll_e"},
		{expr: `atoll_f == 1 or atoll_g < atoll_h`, want: "atoll_f atoll_g atoll_h"},
		{expr: `max(atoll_a`, err: "unclosed"},
		{expr: `max(atoll_a))`, err: "unbalanced"},
		{expr: `maxx(atoll_a)`, err: "unknown function"},
		{expr: `rate(atoll_a[5q])`, err: "range"},
		{expr: `atoll_a{code=5xx}`, err: "matcher"},
		{expr: `sum by atoll_a`, err: "label list"},
		{expr: `histogram_quantile(0.9, sum by (le) (rate(atoll_i_bucket[5m])))`, want: "atoll_i_bucket"},
		{expr: `atoll_a, atoll_b`, err: "unexpected ','"},
	} {
		got, err := promMetrics(tt.expr)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("promMetrics(%q) = %v, %v; want an error with %q", tt.expr, got, err, tt.err)
		case tt.err == "" && (err != nil || strings.Join(got, " ") != tt.want):
			t.Errorf("promMetrics(%q) = %v, %v; want %s", tt.expr, got, err, tt.want)
		}
	}
}

// alertRules is the shape of a Prometheus rule file.
type alertRules struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// monitoringMetrics loads the alerting rules and the dashboard of
// docs/monitoring, checks them and returns every metric they read, with
// where.
func monitoringMetrics(t *testing.T) map[string][]string {
	t.Helper()
	uses := map[string][]string{}
	add := func(where, expr string) {
		names, err := promMetrics(expr)
		if err != nil {
			t.Errorf("%s: %q: %v", where, expr, err)
		}
		for _, n := range names {
			uses[n] = append(uses[n], where)
		}
	}
	var rules alertRules
	decodeStrict(t, "../../docs/monitoring/atoll-alerts.json", &rules)
	if len(rules.Groups) == 0 {
		t.Fatal("docs/monitoring/atoll-alerts.json: no rule group")
	}
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			where := "alert " + r.Alert
			if r.Alert == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: want a name, a severity label and a summary", where)
			}
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", where, r.For, err)
				}
			}
			alerts = append(alerts, r.Alert)
			add(where, r.Expr)
		}
	}
	for _, want := range []string{"AtollNodeUnreachable", "AtollUnderReplicated", "AtollDiskUnderReserve", "AtollCertificateExpiringSoon", "AtollLeaderFlapping"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("alerting rules lack %s", want)
		}
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	decode(t, "../../docs/monitoring/atoll-dashboard.json", &dash)
	if dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatal("docs/monitoring/atoll-dashboard.json: no title or no panel")
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			add("dashboard panel "+p.Title, tg.Expr)
		}
	}
	return uses
}

func decode(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// decodeStrict is decode refusing fields v does not have (a misspelt
// "expr" or "for").
func decodeStrict(t *testing.T, path string, v any) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestMonitoringFilesParse checks the rules and the dashboard without a
// node; TestMetricsEndToEnd checks the metrics they read exist.
func TestMonitoringFilesParse(t *testing.T) {
	if uses := monitoringMetrics(t); len(uses) == 0 {
		t.Error("the rules and the dashboard read no metric")
	}
}

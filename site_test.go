package atoll

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestCheckDomains(t *testing.T) {
	many := make([]string, MaxDomains+1)
	for i := range many {
		many[i] = "d" + strings.Repeat("x", i%5) + ".example.com"
	}
	tests := []struct {
		name string
		in   []string
		want []string
		err  string
	}{
		{name: "none", in: nil, want: []string{}},
		{name: "repeats dropped, order kept", in: []string{"b.example.com", "a.example.com", "b.example.com"}, want: []string{"b.example.com", "a.example.com"}},
		{name: "uppercase is not rewritten", in: []string{"Blog.example.com"}, err: `invalid domain "Blog.example.com"`},
		{name: "port", in: []string{"blog.example.com:443"}, err: "without scheme, port or path"},
		{name: "one label", in: []string{"localhost"}, err: "invalid domain"},
		{name: "too many", in: many, err: "at most 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CheckDomains(tt.in)
			if tt.err != "" {
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("CheckDomains(%q) = %q, %v; want an ErrInvalid containing %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("CheckDomains(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNormalizeDomainThenCheck(t *testing.T) {
	got, err := CheckDomains([]string{NormalizeDomain("  WWW.Example.COM. ")})
	if err != nil || !slices.Equal(got, []string{"www.example.com"}) {
		t.Fatalf("got %q, %v; want [www.example.com]", got, err)
	}
}

func TestCheckRetain(t *testing.T) {
	for _, n := range []int{0, 1, MaxRetain} {
		if err := CheckRetain(n); err != nil {
			t.Errorf("CheckRetain(%d) = %v, want nil", n, err)
		}
	}
	for _, n := range []int{-1, MaxRetain + 1} {
		if err := CheckRetain(n); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckRetain(%d) = %v, want ErrInvalid", n, err)
		}
	}
}

func TestCheckTokenName(t *testing.T) {
	if err := CheckTokenName("ci deploys"); err != nil {
		t.Errorf("CheckTokenName(ci deploys) = %v", err)
	}
	for _, name := range []string{strings.Repeat("n", MaxTokenNameLen+1), "a\nb"} {
		if err := CheckTokenName(name); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckTokenName(%q) = %v, want ErrInvalid", name, err)
		}
	}
}

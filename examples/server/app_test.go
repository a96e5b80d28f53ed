package main

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSlugify(t *testing.T) {
	cases := []struct{ in, want string }{
		{"My Repo", "my-repo"},
		{"  Hello,   World!! ", "hello-world"},
		{"already-fine_1.2", "already-fine_1.2"},
		{"ÄÖÜ tools", "tools"},
		{"--x--", "x"},
		{"a/b\\c", "a-b-c"},
	}
	for _, c := range cases {
		got, err := slugify(c.in)
		if err != nil || got != c.want {
			t.Errorf("slugify(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "!!!", "repo.git", strings.Repeat("a", 129)} {
		if got, err := slugify(bad); !errors.Is(err, errBadRequest) {
			t.Errorf("slugify(%q) = %q, %v; want a bad request", bad, got, err)
		}
	}
}

func TestPaginate(t *testing.T) {
	all := []int{0, 1, 2, 3, 4, 5, 6}
	cases := []struct {
		query      string
		values     []int
		last       bool
		next       int
		badRequest bool
	}{
		{"", all, true, -1, false},
		{"?limit=3", []int{0, 1, 2}, false, 3, false},
		{"?start=3&limit=3", []int{3, 4, 5}, false, 6, false},
		{"?start=6&limit=3", []int{6}, true, -1, false},
		{"?start=10", []int{}, true, -1, false},
		{"?start=-1", nil, false, 0, true},
		{"?limit=0", nil, false, 0, true},
		{"?limit=x", nil, false, 0, true},
	}
	for _, c := range cases {
		p, err := paginate(httptest.NewRequest("GET", "/x"+c.query, nil), all)
		if c.badRequest {
			if !errors.Is(err, errBadRequest) {
				t.Errorf("%s: err = %v, want bad request", c.query, err)
			}
			continue
		}
		if err != nil || len(p.Values) != len(c.values) || p.IsLastPage != c.last || p.Size != len(c.values) {
			t.Errorf("%s: page %+v, %v", c.query, p, err)
			continue
		}
		for i := range c.values {
			if p.Values[i] != c.values[i] {
				t.Errorf("%s: values %v, want %v", c.query, p.Values, c.values)
			}
		}
		if (p.NextPageStart == nil) != (c.next < 0) || (p.NextPageStart != nil && *p.NextPageStart != c.next) {
			t.Errorf("%s: nextPageStart %v, want %d", c.query, p.NextPageStart, c.next)
		}
	}
}

func TestDecodeStrict(t *testing.T) {
	var v struct {
		Key string `json:"key"`
	}
	for _, bad := range []string{`{"key":"A","extra":1}`, `{"key":`, `{"key":"A"} {}`, `[]`, ``} {
		if err := decodeStrict([]byte(bad), &v); !errors.Is(err, errBadRequest) {
			t.Errorf("decodeStrict(%q) = %v, want bad request", bad, err)
		}
	}
	if err := decodeStrict([]byte(`{"key":"A"}`), &v); err != nil || v.Key != "A" {
		t.Fatalf("valid body: %v %+v", err, v)
	}
}

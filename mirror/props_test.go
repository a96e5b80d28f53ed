package mirror_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/props"
)

func TestSetupFromProps(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		env     []string
		want    mirror.SetupConfig
		every   time.Duration
		wantErr error
	}{
		{"mirror", "application.mode=mirror\nsetup.displayName=Sydney\nsetup.baseUrl=https://syd.example.com\n" +
			"plugin.mirroring.upstream.url=https://git.example.com\nplugin.mirroring.upstream.type=server\n", []string{},
			mirror.SetupConfig{DisplayName: "Sydney", BaseURL: "https://syd.example.com", UpstreamURL: "https://git.example.com", UpstreamType: "server"},
			3 * time.Minute, nil},
		{"environment overrides", "application.mode=mirror\nsetup.baseUrl=https://syd.example.com\n",
			[]string{"PLUGIN_MIRRORING_UPSTREAM_URL=https://up.example.com", "PLUGIN_MIRRORING_SYNCHRONIZATION_INTERVAL=5m"},
			mirror.SetupConfig{BaseURL: "https://syd.example.com", UpstreamURL: "https://up.example.com", UpstreamType: "server"},
			5 * time.Minute, nil},
		{"primary", "setup.baseUrl=https://git.example.com\n", []string{}, mirror.SetupConfig{}, 0, mirror.ErrNotMirrorMode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			home := testutil.NewHome(t)
			home.WriteProperties(t, tc.file)
			p, err := props.Load(context.Background(), home.Dir, props.LoadOptions{Environ: tc.env})
			if err != nil {
				t.Fatal(err)
			}
			cfg, _ := props.Check(p)
			got, every, err := mirror.SetupFromProps(cfg)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && (got != tc.want || every != tc.every) {
				t.Fatalf("got %+v every %s, want %+v every %s", got, every, tc.want, tc.every)
			}
		})
	}
}

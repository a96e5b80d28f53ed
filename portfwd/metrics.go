package portfwd

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// WritePrometheus writes st in the Prometheus text exposition format, with
// metric names prefixed "portfwd_".
func (st Stats) WritePrometheus(w io.Writer) error {
	bw := bufio.NewWriter(w)
	type sample struct {
		labels string
		value  float64
	}
	metric := func(name, typ, help string, samples []sample) {
		fmt.Fprintf(bw, "# HELP portfwd_%s %s\n# TYPE portfwd_%s %s\n", name, help, name, typ)
		for _, s := range samples {
			fmt.Fprintf(bw, "portfwd_%s{%s} %s\n", name, s.labels, strconv.FormatFloat(s.value, 'g', -1, 64))
		}
	}
	fe := func(get func(FrontendStats) int64) []sample {
		var out []sample
		for _, f := range st.Frontends {
			out = append(out, sample{label("frontend", f.Name), float64(get(f))})
		}
		return out
	}
	be := func(get func(BackendStats) int64) []sample {
		var out []sample
		for _, b := range st.Backends {
			out = append(out, sample{label("backend", b.Name), float64(get(b))})
		}
		return out
	}
	srv := func(get func(ServerStats) float64) []sample {
		var out []sample
		for _, b := range st.Backends {
			for _, s := range b.Servers {
				out = append(out, sample{label("backend", b.Name) + "," + label("server", s.Name), get(s)})
			}
		}
		return out
	}
	metric("frontend_current_connections", "gauge", "Connections open on the frontend.", fe(func(f FrontendStats) int64 { return f.Current }))
	metric("frontend_connections_total", "counter", "Connections accepted by the frontend.", fe(func(f FrontendStats) int64 { return f.Total }))
	metric("frontend_bytes_in_total", "counter", "Bytes from clients.", fe(func(f FrontendStats) int64 { return f.BytesIn }))
	metric("frontend_bytes_out_total", "counter", "Bytes to clients.", fe(func(f FrontendStats) int64 { return f.BytesOut }))
	metric("backend_current_connections", "gauge", "Connections open to the backend's servers.", be(func(b BackendStats) int64 { return b.Current }))
	metric("backend_connections_total", "counter", "Connections established to the backend's servers.", be(func(b BackendStats) int64 { return b.Total }))
	metric("backend_queue_length", "gauge", "Connections waiting for a slot on any server of the backend.", be(func(b BackendStats) int64 { return int64(b.Queue) }))
	metric("backend_connect_errors_total", "counter", "Failed connect attempts.", be(func(b BackendStats) int64 { return b.ConnectErrors }))
	metric("backend_bytes_in_total", "counter", "Bytes to the backend's servers.", be(func(b BackendStats) int64 { return b.BytesIn }))
	metric("backend_bytes_out_total", "counter", "Bytes from the backend's servers.", be(func(b BackendStats) int64 { return b.BytesOut }))
	metric("server_up", "gauge", "1 when the server is up.", srv(func(s ServerStats) float64 {
		if s.Up {
			return 1
		}
		return 0
	}))
	metric("server_last_change_seconds", "gauge", "Unix time of the last health state change.", srv(func(s ServerStats) float64 { return float64(s.LastChange.Unix()) }))
	metric("server_current_connections", "gauge", "Connections open to the server.", srv(func(s ServerStats) float64 { return float64(s.Current) }))
	metric("server_queue_length", "gauge", "Connections waiting for this server in particular (balance source).", srv(func(s ServerStats) float64 { return float64(s.Queue) }))
	metric("server_connections_total", "counter", "Connections established to the server.", srv(func(s ServerStats) float64 { return float64(s.Total) }))
	metric("server_connect_errors_total", "counter", "Failed connect attempts to the server.", srv(func(s ServerStats) float64 { return float64(s.ConnectErrors) }))
	metric("server_check_failures_total", "counter", "Failed health checks.", srv(func(s ServerStats) float64 { return float64(s.CheckFailures) }))
	metric("server_bytes_in_total", "counter", "Bytes to the server.", srv(func(s ServerStats) float64 { return float64(s.BytesIn) }))
	metric("server_bytes_out_total", "counter", "Bytes from the server.", srv(func(s ServerStats) float64 { return float64(s.BytesOut) }))
	return bw.Flush()
}

func label(name, value string) string {
	r := strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
	return name + `="` + r.Replace(value) + `"`
}

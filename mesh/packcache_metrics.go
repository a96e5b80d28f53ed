package mesh

import (
	"bufio"
	"context"
	"fmt"
	"io"
)

// WritePrometheus writes st in the Prometheus text exposition format, with
// metric names prefixed "gitfleet_pack_cache_".
func (st PackCacheStats) WritePrometheus(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enabled := int64(0)
	if st.Enabled {
		enabled = 1
	}
	for _, m := range []struct {
		name, typ, help string
		v               int64
	}{
		{"enabled", "gauge", "1 when the store's pack cache is on.", enabled},
		{"hits_total", "counter", "Requests served from a complete cached pack.", st.Hits},
		{"misses_total", "counter", "Requests that started a pack-objects.", st.Misses},
		{"joins_total", "counter", "Requests that streamed a pack another request was producing.", st.Joins},
		{"bypassed_total", "counter", "Packs served but not kept: too big, or writing failed.", st.Bypassed},
		{"corrupt_total", "counter", "Cached packs found damaged, removed and made again.", st.Corrupt},
		{"failed_total", "counter", "pack-objects runs that failed.", st.Failed},
		{"served_bytes_total", "counter", "Bytes sent from cached or shared packs.", st.BytesServed},
		{"written_bytes_total", "counter", "Bytes written to the cache.", st.BytesWritten},
		{"evictions_total", "counter", "Cached packs removed for size or age.", st.Evictions},
		{"queued_total", "counter", "pack-objects runs that waited for a per-repository slot.", st.Queued},
		{"entries", "gauge", "Cached packs and fetch answers on disk.", st.Entries},
		{"bytes", "gauge", "Bytes of cached packs and fetch answers on disk.", st.BytesOnDisk},
		{"response_hits_total", "counter", "Protocol v2 fetch requests answered whole from a cached answer.", st.ResponseHits},
		{"responses_written_total", "counter", "Fetch answers kept in the cache.", st.ResponsesWritten},
		{"list_hits_total", "counter", "Protocol v2 ls-refs requests answered from a cached answer.", st.ListHits},
		{"sessions_without_git_total", "counter", "Protocol v2 sessions answered whole from the cache, without upload-pack.", st.SessionsWithoutGit},
	} {
		fmt.Fprintf(bw, "# HELP gitfleet_pack_cache_%s %s\n# TYPE gitfleet_pack_cache_%s %s\ngitfleet_pack_cache_%s %d\n",
			m.name, m.help, m.name, m.typ, m.name, m.v)
	}
	return bw.Flush()
}

// PackCacheStats returns the counters of the sidecar's pack cache (see
// Store.PackCacheStats).
func (c *Client) PackCacheStats(ctx context.Context) (PackCacheStats, error) {
	var out PackCacheStats
	err := c.call(ctx, pathPackCacheStats, repoRequest{}, &out)
	return out, err
}

// pathPackCacheStats is the sidecar call for PackCacheStats.
const pathPackCacheStats = "/v1/packcache/stats"

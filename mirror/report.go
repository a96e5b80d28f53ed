package mirror

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the report as an aligned table: one row per check with its
// number, name, status and observation, and the action to take under a failed
// check.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tCHECK\tSTATUS\tOBSERVED")
	for i, c := range r.Checks {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", i+1, c.Name, strings.ToUpper(string(c.Status)), oneLine(c.Observed))
		if c.Action != "" {
			fmt.Fprintf(tw, "\t\t\t-> %s\n", oneLine(c.Action))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "all checks passed"
	if !r.OK() {
		verdict = "some checks failed: act on the first failure first"
	}
	_, err := fmt.Fprintln(w, verdict)
	return err
}

// JSON returns the report as indented JSON.
func (r *Report) JSON() ([]byte, error) {
	return json.MarshalIndent(r, "", "  ")
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

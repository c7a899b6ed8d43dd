package batch

import (
	"context"
	"log/slog"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/agg"
)

// progress is what a batch heartbeats: everything in [Start, Next) is
// counted in it and its dead letters and raw rows are stored, so a retry of
// the same plan resumes at Next. Start -1 says only that the batch is alive.
type progress struct {
	Start, Next int64
	// Table is the aggregate of [Start, Next), compact (agg.MarshalBinary).
	Table                              []byte
	Events, Late, Early, Dead, Skipped uint64
	Markers                            uint64
	MinEventTime, MaxEventTime         time.Time
	Windows                            int
	// Archived: the events of [Start, Next) are in the raw archive. A
	// retry with the archive set otherwise starts again instead.
	Archived bool
}

// alive is the progress of a batch that has nothing a retry could take.
var alive = progress{Start: -1}

// Temporal fails an activity for good when a heartbeat passes its payload
// limit (2 MiB by default). A heartbeat carries the aggregate so far in its
// compact form only while that form is under maxTableBytes (some 100,000
// keys); past it, the batch heartbeats that it is alive and a retry starts
// it again. maxHeartbeatBytes bounds the whole heartbeat, encoded (JSON
// takes the table in base64, a third more).
const (
	maxTableBytes     = 600 << 10
	maxHeartbeatBytes = 1 << 20
)

// resume continues r from a previous attempt's heartbeat, when it read the
// same plan from the same start and not past end (0: the end is not known
// yet); it returns the offset resumed from, or 0.
func (r *run) resume(ctx context.Context, end int64) int64 {
	var saved progress
	if !r.hb.Last(ctx, &saved) || !resumable(saved, r.st.Start, end) || saved.Archived != r.p.Raw {
		return 0
	}
	table := agg.Table{}
	if err := table.UnmarshalBinary(saved.Table); err != nil {
		slog.WarnContext(ctx, "batch progress unreadable, starting again", "topic", r.id.Topic, "partition", r.id.Partition, "err", err)
		return 0
	}
	r.st, r.table, r.beaten = saved, table, saved
	r.st.Table = nil
	slog.InfoContext(ctx, "resuming batch", "topic", r.id.Topic, "partition", r.id.Partition, "offset", saved.Next)
	return saved.Next
}

// resumable says whether saved progress can be continued by a run from
// start to end (0: not known yet). A tailing attempt that read past its
// plan's end heartbeats such progress before it reads the plan again, and a
// retry must not take it: it counts records of the next slot.
func resumable(saved progress, start, end int64) bool {
	return saved.Start == start && saved.Next > start && (end == 0 || saved.Next <= end)
}

// tableShare bounds the time a run spends carrying its aggregate in its
// heartbeats (a sort and a compression of every key, tens of milliseconds
// for tens of thousands of keys) to about 1/(tableShare+1) of its time: a
// table is carried again only once tableShare times its last cost has
// passed. Beats in between carry the progress carried last: a retry may
// resume from any progress a heartbeat carried (it reads the rest again).
const tableShare = 9

// beat stores what is pending, then heartbeats the progress (or only that
// the run is alive, while held, or when the aggregate is too big to carry).
func (r *run) beat(ctx context.Context) error {
	now := time.Now()
	r.lastBeat = now
	if err := r.flush(ctx); err != nil {
		return err
	}
	switch {
	case r.hold:
		r.beaten = alive
	case r.tooBig:
	case now.Sub(r.tabled) >= tableShare*r.tableCost:
		began := time.Now() // after the flush: its inserts are not the table's cost
		table, err := r.table.MarshalBinary()
		r.tabled, r.tableCost = began, time.Since(began)
		r.beaten = alive
		if err == nil && len(table) <= maxTableBytes {
			st := r.st
			st.Table, st.Archived = table, r.p.Raw
			r.beaten = st
		}
		r.tooBig = err == nil && len(table) > maxTableBytes // a table only grows
	}
	r.hb.Record(ctx, r.beaten)
	return nil
}

package batch

import (
	"context"
	"log/slog"
	"sync"
)

// Outcome is one batch of a group: its result, or why it failed.
type Outcome struct {
	Result Result
	// Err says why the batch failed ("" when it is done). A failed batch
	// is run again as an ordinary batch of its plan, which meets the same
	// error if no retry can fix it.
	Err string `json:",omitempty"`
}

// ProcessGroup processes several batches at once, each as Process would,
// and returns their outcomes in the order of ins. It is how the tails of a
// slot with many partitions run: one activity (one start, one completion,
// one heartbeat) for several partitions instead of one each, while every
// batch stays a batch of its own, with its own plan, ledger row and
// partials, so that nothing of the exactly-once argument changes. A batch
// that fails does not stop the others; the group fails only when ctx ends.
//
// The group does not resume from heartbeats: hb hears only that the group
// is alive, and a retry (of the group, or of one of its batches on its own)
// reads each batch from its start again.
func (p *Processor) ProcessGroup(ctx context.Context, ins []Input, hb Heartbeat) ([]Outcome, error) {
	out := make([]Outcome, len(ins))
	beat := &groupBeat{hb: hb}
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := p.Process(ctx, in, beat)
			if err != nil {
				if ctx.Err() == nil {
					slog.WarnContext(ctx, "batch of a group failed; its plan runs again as a batch of its own",
						"topic", in.Plan.Topic, "partition", in.Plan.Partition, "slot", in.Plan.Slot, "err", err)
				}
				out[i].Err = err.Error()
				return
			}
			out[i].Result = res
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// groupBeat is the Heartbeat the batches of a group share: each heartbeat
// of a batch says only that the group is alive (the progress of several
// batches could pass Temporal's payload limit together), and there is never
// a previous attempt's progress to resume.
type groupBeat struct {
	mu sync.Mutex
	hb Heartbeat
}

func (g *groupBeat) Record(ctx context.Context, _ any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hb.Record(ctx, alive)
}

func (*groupBeat) Last(context.Context, any) bool { return false }

package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/workflows"
)

// A worker set to fewer activity slots than the tailing slots of the
// scheduled topics need (2 per partition + 4) refuses to start and says
// why; unset, it sizes itself from the partitions.
func TestWorkerSizesItsActivitySlots(t *testing.T) {
	e := getEnv(t)
	ctx := context.Background()
	topic := e.newTopic(t, 20)
	opts := workflows.SlotSchedule(workflows.ScheduledInput{Topic: topic, Tail: true}, e.cfg.TaskQueue+"-never")
	opts.Paused = true // it only has to exist
	h, err := e.temporal.ScheduleClient().Create(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Delete(context.Background()) })

	run := func(env ...string) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, e.workerBin)
		cmd.Env = append(os.Environ(), append([]string{"RTB_TASK_QUEUE=" + e.cfg.TaskQueue + "-sizing",
			"RTB_CLICKHOUSE_DATABASE=" + e.cfg.ClickHouseDatabase}, env...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("RTB_WORKER_ACTIVITIES=32")
	if err == nil || !strings.Contains(out, "RTB_WORKER_ACTIVITIES (--activities) 32 is below the ") || !strings.Contains(out, topic+": 20") {
		t.Fatalf("a worker of 32 slots for a scheduled topic of 20 partitions: %v\n%s", err, out)
	}
	out, _ = run() // killed after 5 s, running
	if !strings.Contains(out, "activities=") || strings.Contains(out, "activities=32 ") {
		t.Fatalf("an unset worker did not size itself above 32 for 20 partitions:\n%s", out)
	}
}

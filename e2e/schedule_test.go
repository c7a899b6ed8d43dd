package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/workflows"
)

// `schedule create` run again takes all of its new settings: the
// reconciliation's interval and its catch-up window with it, and
// --reconcile-every 0 removes a reconciliation schedule that exists (it
// went on running, unmentioned).
func TestScheduleCreateAgainTakesItsSettings(t *testing.T) {
	e := getEnv(t)
	bin := build(t, "starter")
	topic := e.newTopic(t, 1)
	ctx := context.Background()
	sc := e.temporal.ScheduleClient()
	t.Cleanup(func() {
		for _, id := range []string{workflows.ScheduleID(topic), workflows.ReconcileScheduleID(topic)} {
			_ = sc.GetHandle(ctx, id).Delete(ctx)
		}
	})
	create := func(args ...string) string {
		t.Helper()
		out, err := e.starterCmd(bin, e.cfg.TaskQueue+"-schedules", append([]string{"schedule", "create", "--topic", topic}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("schedule create %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	create("--reconcile-every", "0") // none to remove yet
	create()
	create("--reconcile-every", "30m")
	d, err := sc.GetHandle(ctx, workflows.ReconcileScheduleID(topic)).Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if every := d.Schedule.Spec.Intervals[0].Every; every != 30*time.Minute || d.Schedule.Policy.CatchupWindow != 30*time.Minute {
		t.Errorf("reconciliation after --reconcile-every 30m: every %s, catch-up window %s; want 30m and 30m", every, d.Schedule.Policy.CatchupWindow)
	}
	out := create("--reconcile-every", "0")
	if _, err := sc.GetHandle(ctx, workflows.ReconcileScheduleID(topic)).Describe(ctx); err == nil {
		t.Errorf("the reconciliation schedule still exists after --reconcile-every 0:\n%s", out)
	}
	if _, err := sc.GetHandle(ctx, workflows.ScheduleID(topic)).Describe(ctx); err != nil {
		t.Errorf("the slot schedule after --reconcile-every 0: %v", err)
	}
}

package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/rtbpipe/rtbpipe/activities"
	rcl "github.com/rtbpipe/rtbpipe/internal/reconcile"
)

// Stale window totals are repaired by refreshing their hours, not by
// rerunning slots; the check after the repair decides what remains.
func TestReconcileRefreshesStaleTotals(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(ReconcileWorkflow)
	hour := slot.Truncate(time.Hour)
	checks := 0
	env.OnActivity(a.CheckRange, mock.Anything, mock.Anything).Return(func(context.Context, activities.CheckInput) (activities.CheckReport, error) {
		checks++
		if checks == 1 {
			return activities.CheckReport{Findings: []activities.Finding{{Slot: hour, Partition: -1, Kind: rcl.Totals, Repairable: true}}}, nil
		}
		return activities.CheckReport{}, nil
	})
	refreshed := recordRefreshes(t, env)
	env.OnActivity(a.RecordReconciliation, mock.Anything, mock.Anything).Return(nil)
	env.ExecuteWorkflow(ReconcileWorkflow, ReconcileInput{Topic: "t", From: hour, To: hour.Add(time.Hour), Repair: true})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res ReconcileResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if len(*refreshed) != 1 || len((*refreshed)[0].Hours) != 1 || !(*refreshed)[0].Hours[0].Equal(hour) || len((*refreshed)[0].Windows) != 0 {
		t.Fatalf("refreshed %+v, want hour %s once", *refreshed, hour)
	}
	if len(res.RepairedSlots) != 0 || len(res.RepairedHours) != 1 || len(res.Remaining) != 0 || checks != 2 {
		t.Fatalf("result %+v after %d checks", res, checks)
	}
}

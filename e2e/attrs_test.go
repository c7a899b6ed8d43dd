package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/rtbpipe/rtbpipe/activities"
	"github.com/rtbpipe/rtbpipe/internal/connect"
	"github.com/rtbpipe/rtbpipe/workflows"
)

// findRun waits until the visibility query finds exactly one run, and
// returns it.
func (e *env) findRun(t *testing.T, query string) *workflowpb.WorkflowExecutionInfo {
	t.Helper()
	for i := 0; ; i++ { // visibility is eventually consistent
		resp, err := e.temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: e.cfg.TemporalNamespace, Query: query})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Executions) == 1 {
			return resp.Executions[0]
		}
		if i == 50 {
			t.Fatalf("%s: %d runs after 10 s, want one", query, len(resp.Executions))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// attrInt is a run's Int search attribute.
func attrInt(t *testing.T, ex *workflowpb.WorkflowExecutionInfo, name string) int64 {
	t.Helper()
	var v int64
	if err := converter.GetDefaultDataConverter().FromPayload(ex.SearchAttributes.IndexedFields[name], &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// Slot, backfill and reconciliation runs carry rtbpipe's search attributes
// once they are registered (starter setup does it): the UI finds them by
// topic and outcome, with the events they counted.
func TestRunsCarrySearchAttributes(t *testing.T) {
	e := getEnv(t)
	ctx := context.Background()
	if _, err := connect.EnsureSearchAttributes(ctx, e.temporal, e.cfg.TemporalNamespace, workflows.SearchAttributes); err != nil {
		t.Fatal(err)
	}
	e.startWorker(t)
	topic := e.newTopic(t, 1)
	base := pastBase(20)
	d := standard(111, 1, base, 2, 100)
	e.produce(t, topic, d.recs)
	res := e.runSlot(t, topic, base)
	ex := e.findRun(t, fmt.Sprintf("RtbTopic = '%s' AND WorkflowType = 'SlotWorkflow' AND RtbOutcome = '%s'", topic, workflows.OutcomeDone))
	if ex.Execution.WorkflowId != workflows.SlotWorkflowID(topic, base) {
		t.Fatalf("the query found %s", ex.Execution.WorkflowId)
	}
	if n := attrInt(t, ex, "RtbEvents"); n != int64(res.Events) {
		t.Fatalf("RtbEvents %d, the slot counted %d", n, res.Events)
	}

	p, err := e.backfill(t, topic, base, base.Add(2*time.Minute), activities.SourceKafka)
	if err != nil {
		t.Fatal(err)
	}
	ex = e.findRun(t, fmt.Sprintf("RtbTopic = '%s' AND WorkflowType = 'BackfillWorkflow' AND RtbOutcome = '%s'", topic, workflows.OutcomeDone))
	if n := attrInt(t, ex, "RtbEvents"); n != int64(p.Events) || p.Events == 0 {
		t.Fatalf("backfill RtbEvents %d, it counted %d", n, p.Events)
	}
	want := workflows.OutcomeDone
	if r := e.reconcile(t, topic, base, base.Add(2*time.Minute), false); len(r.Remaining) > 0 {
		want = workflows.OutcomeFindings // the records stamped now are not planned yet
	}
	e.findRun(t, fmt.Sprintf("RtbTopic = '%s' AND WorkflowType = 'ReconcileWorkflow' AND RtbOutcome = '%s'", topic, want))
}

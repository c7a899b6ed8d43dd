package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/rtbpipe/rtbpipe/internal/connect"
	"github.com/rtbpipe/rtbpipe/workflows"
)

// A slot run carries rtbpipe's search attributes once they are registered
// (starter setup does it): the UI finds it by topic and outcome, with the
// events it counted.
func TestSlotSearchAttributes(t *testing.T) {
	e := getEnv(t)
	ctx := context.Background()
	if _, err := connect.EnsureSearchAttributes(ctx, e.temporal, e.cfg.TemporalNamespace, workflows.SearchAttributes); err != nil {
		t.Fatal(err)
	}
	e.startWorker(t)
	topic := e.newTopic(t, 1)
	base := pastBase(20)
	d := standard(111, 1, base, 1, 100)
	e.produce(t, topic, d.recs)
	res := e.runSlot(t, topic, base)
	query := fmt.Sprintf("RtbTopic = '%s' AND RtbOutcome = '%s'", topic, workflows.OutcomeDone)
	for i := 0; ; i++ { // visibility is eventually consistent
		resp, err := e.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: e.cfg.TemporalNamespace, Query: query})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Executions) == 1 {
			ex := resp.Executions[0]
			if ex.Execution.WorkflowId != workflows.SlotWorkflowID(topic, base) {
				t.Fatalf("%s found %s", query, ex.Execution.WorkflowId)
			}
			var events int64
			if err := converter.GetDefaultDataConverter().FromPayload(ex.SearchAttributes.IndexedFields["RtbEvents"], &events); err != nil {
				t.Fatal(err)
			}
			if events != int64(res.Events) {
				t.Fatalf("RtbEvents %d, the slot counted %d", events, res.Events)
			}
			return
		}
		if i == 50 {
			t.Fatalf("%s: %d runs after 10 s, want the slot's", query, len(resp.Executions))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

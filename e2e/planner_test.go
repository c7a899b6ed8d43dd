package e2e

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/rtbpipe/rtbpipe/workflows"
)

// The planner workflow is the lock on a topic's plans. A slot terminated
// while its planner waits (here for an idle partition) must not take the
// planner with it: the planner's activity may still write its plans, and a
// planner started meanwhile would plan the same offsets.
func TestPlannerOutlivesATerminatedSlot(t *testing.T) {
	e := getEnv(t)
	e.startWorker(t)
	topic := e.newTopic(t, 1)
	ctx := context.Background()
	slot := time.Now().UTC().Truncate(time.Minute).Add(-time.Minute) // ended; its partition is idle past it
	d := newDataset()
	r := rand.New(rand.NewPCG(41, 7))
	d.add(r, 0, slot.Add(time.Second), slot)
	d.add(r, 0, slot.Add(time.Minute), slot.Add(time.Minute))
	e.produce(t, topic, d.recs[:1])

	run, err := e.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.SlotWorkflowID(topic, slot), TaskQueue: e.cfg.TaskQueue, WorkflowRunTimeout: 5 * time.Minute,
	}, workflows.SlotWorkflow, workflows.SlotInput{Topic: topic, Slot: slot, IdleWait: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	planner := workflows.PlannerWorkflowID(topic)
	status := func() enumspb.WorkflowExecutionStatus {
		d, err := e.temporal.DescribeWorkflowExecution(ctx, planner, "")
		if err != nil {
			return enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED
		}
		return d.WorkflowExecutionInfo.Status
	}
	for i := 0; status() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING; i++ {
		if i == 100 {
			t.Fatal("the planner did not start in 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // the planner's activity is waiting for the idle partition
	if err := e.temporal.TerminateWorkflow(ctx, run.GetID(), run.GetRunID(), "e2e: a slot terminated mid-plan"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if s := status(); s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("the planner is %s after its slot was terminated: the lock is free while its activity may still write", s)
	}
	// A record past the slot's end: the planner's wait ends, and it writes.
	e.produce(t, topic, d.recs[1:])
	for i := 0; status() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING; i++ {
		if i == 300 {
			t.Fatal("the planner did not finish in 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := status(); s != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Fatalf("the planner ended %s", s)
	}
	bs := e.ledger(t, topic)
	if len(bs) != 1 || bs[0].Start != 0 || bs[0].End != 1 {
		t.Fatalf("ledger %+v, want the slot's plan [0,1)", bs)
	}
	// The slot run again finds its plan and finishes it.
	if res := e.runSlot(t, topic, slot); res.Events != 1 || res.NewPlans != 0 {
		t.Fatalf("rerun: %+v", res)
	}
}

package e2e

import (
	"bytes"
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/rtbpipe/rtbpipe/workflows"
)

// Ctrl-C during `run-slot --wait` stops the waiting, not the slot: the
// command says so, with the run's link, instead of "slot failed: context
// canceled", and the workflow goes on in Temporal. (No worker polls the
// task queue here, so the slot is still running when the signal comes.)
func TestInterruptedWaitSaysTheSlotGoesOn(t *testing.T) {
	e := getEnv(t)
	bin := build(t, "starter")
	topic := e.newTopic(t, 1)
	slot := pastBase(5)
	queue := e.cfg.TaskQueue + "-nobody"
	cmd := e.starterCmd(bin, queue, "run-slot", "--topic", topic, "--slot", slot.Format(time.RFC3339), "--wait")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id := workflows.SlotWorkflowID(topic, slot)
	t.Cleanup(func() { _ = e.temporal.TerminateWorkflow(context.Background(), id, "", "test over") })
	for i := 0; ; i++ { // until the slot has started
		if _, err := e.temporal.DescribeWorkflowExecution(context.Background(), id, ""); err == nil {
			break
		}
		if i == 100 {
			cmd.Process.Kill()
			t.Fatalf("slot %s not started after 20 s:\n%s", id, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // waiting on its result
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if err == nil || !strings.Contains(out.String(), "stopped waiting") || !strings.Contains(out.String(), id) || strings.Contains(out.String(), "failed") {
		t.Errorf("run-slot --wait interrupted: %v\n%s\nwant exit 1 saying it stopped waiting for %s, not that it failed", err, out.String(), id)
	}
	d, err := e.temporal.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	if s := d.GetWorkflowExecutionInfo().GetStatus(); s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Errorf("slot %s after the interrupted wait: %s, want running", id, s)
	}
}

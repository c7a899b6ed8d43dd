package workflows

import (
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// rtbpipe's custom search attributes, set on every slot run when the
// namespace has them (starter setup registers them): filter the Temporal
// UI's workflow list with, for example,
//
//	RtbTopic = 'ad-events' AND RtbOutcome = 'failed' AND StartTime > '2026-11-24T00:00:00Z'
var (
	AttrTopic   = temporal.NewSearchAttributeKeyKeyword("RtbTopic")   // the slot's topic
	AttrSlot    = temporal.NewSearchAttributeKeyTime("RtbSlot")       // the slot's minute
	AttrOutcome = temporal.NewSearchAttributeKeyKeyword("RtbOutcome") // running, done or failed
	AttrEvents  = temporal.NewSearchAttributeKeyInt64("RtbEvents")    // events the slot counted
)

// Outcomes of a slot run, as AttrOutcome holds them.
const (
	OutcomeRunning = "running"
	OutcomeDone    = "done"
	OutcomeFailed  = "failed"
)

// SearchAttributes are the custom search attributes rtbpipe uses, by name,
// with their types: what starter setup registers.
var SearchAttributes = map[string]enumspb.IndexedValueType{
	AttrTopic.GetName():   enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	AttrSlot.GetName():    enumspb.INDEXED_VALUE_TYPE_DATETIME,
	AttrOutcome.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	AttrEvents.GetName():  enumspb.INDEXED_VALUE_TYPE_INT,
}

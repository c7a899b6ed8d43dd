package main

import (
	"strings"
	"testing"
)

// The soak's default ports stay out of Linux's default range for the local
// ports of outgoing connections (32768-60999): a listener there fails to
// bind whenever a connection holds its port, as a CI run's did.
func TestDefaultPortsStayOutOfTheEphemeralRange(t *testing.T) {
	var o options
	if err := newCommand(&o).ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if err := o.portsOutside(32768, 60999); err != nil {
		t.Fatalf("default ports: %v", err)
	}
}

func TestPortsInTheEphemeralRangeAreRefused(t *testing.T) {
	var o options
	if err := newCommand(&o).ParseFlags([]string{"--proxy-port", "39000"}); err != nil {
		t.Fatal(err)
	}
	err := o.portsOutside(32768, 60999)
	if err == nil || !strings.Contains(err.Error(), "port 39000") || !strings.Contains(err.Error(), "ip_local_port_range") {
		t.Fatalf("--proxy-port 39000: got %v, want a refusal naming port 39000 and the kernel's range", err)
	}
}

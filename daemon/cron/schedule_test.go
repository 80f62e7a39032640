package cron

import (
	"testing"
	"time"
)

func TestNextSlotIsTheFirstAlignedInstantAfter(t *testing.T) {
	at := func(h, m, s int) time.Time { return time.Date(2025, 3, 1, h, m, s, 0, time.UTC) }
	for _, tc := range []struct {
		name          string
		t             time.Time
		every, offset time.Duration
		want          time.Time
	}{
		{"quarter past, before it", at(10, 5, 0), time.Hour, 15 * time.Minute, at(10, 15, 0)},
		{"quarter past, after it", at(10, 20, 0), time.Hour, 15 * time.Minute, at(11, 15, 0)},
		{"exactly on a slot gives the next", at(10, 15, 0), time.Hour, 15 * time.Minute, at(11, 15, 0)},
		{"daily at three, evening", at(22, 0, 0), 24 * time.Hour, 3 * time.Hour, time.Date(2025, 3, 2, 3, 0, 0, 0, time.UTC)},
		{"every second", at(10, 0, 0).Add(300 * time.Millisecond), time.Second, 0, at(10, 0, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NextSlot(tc.t, tc.every, tc.offset); !got.Equal(tc.want) {
				t.Fatalf("NextSlot(%s) = %s, want %s", tc.t, got, tc.want)
			}
		})
	}
}

func TestResumeSlotIsTheSlotAfterTheLastRunsSlot(t *testing.T) {
	slot := time.Date(2025, 3, 1, 10, 15, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		started time.Time
		want    time.Time
	}{
		{"run started just after its slot", slot.Add(40 * time.Millisecond), slot.Add(time.Hour)},
		{"recorded by a clock a little behind", slot.Add(-2 * time.Second), slot.Add(time.Hour)},
		{"a late catch-up run counts for the slot before it", slot.Add(30 * time.Minute), slot.Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := resumeSlot(tc.started, time.Hour, 15*time.Minute); !got.Equal(tc.want) {
				t.Fatalf("resumeSlot(%s) = %s, want %s", tc.started, got, tc.want)
			}
		})
	}
}

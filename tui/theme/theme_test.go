package theme_test

import (
	"slices"
	"testing"
	"time"

	"charm.land/lipgloss/v2"

	"github.com/postalgo/postal/tui/theme"
)

func TestDurationKeepsTwoLargestUnits(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{850 * time.Millisecond, "850ms"},
		{45 * time.Second, "45s"},
		{12 * time.Minute, "12m"},
		{12*time.Minute + 3*time.Second, "12m3s"},
		{3*time.Hour + 5*time.Minute + 59*time.Second, "3h5m"},
		{2 * time.Hour, "2h"},
		{51 * time.Hour, "2d3h"},
		{48 * time.Hour, "2d"},
	} {
		if got := theme.Duration(tt.d); got != tt.want {
			t.Errorf("Duration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
	if got := theme.Age(time.Now(), time.Time{}); got != "-" {
		t.Errorf("Age of the zero time = %q, want -", got)
	}
}

func TestClipKeepsLastPageFullAndCutsWidth(t *testing.T) {
	lines := []string{"a", "b", "c", "d", "e"}
	for _, tt := range []struct {
		name                  string
		offset, width, height int
		want                  []string
		wantOffset            int
	}{
		{"from the top", 0, 10, 2, []string{"a", "b"}, 0},
		{"past the end keeps the last page", 9, 10, 2, []string{"d", "e"}, 3},
		{"negative offset", -3, 10, 2, []string{"a", "b"}, 0},
		{"taller than the content", 2, 10, 9, lines, 0},
		{"no height", 0, 10, 0, nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, off := theme.Clip(lines, tt.offset, tt.width, tt.height)
			if !slices.Equal(got, tt.want) || off != tt.wantOffset {
				t.Fatalf("Clip = %q at %d, want %q at %d", got, off, tt.want, tt.wantOffset)
			}
		})
	}
	if got, _ := theme.Clip([]string{"abcdefgh"}, 0, 5, 1); got[0] != "abcd…" {
		t.Errorf("cut line = %q, want abcd…", got[0])
	}
}

func TestTableAlignsColumns(t *testing.T) {
	got := theme.Table(lipgloss.NewStyle(), []string{"ID\tNAME", "1\tlong name", "22\tx"})
	want := []string{"ID  NAME", "1   long name", "22  x"}
	if !slices.Equal(got, want) {
		t.Fatalf("Table = %q, want %q", got, want)
	}
}

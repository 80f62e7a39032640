package cli

import (
	"bytes"
	"strings"
)

// TestIO is IOStreams over buffers, for tests.
type TestIO struct {
	*IOStreams
	Out    *bytes.Buffer
	ErrOut *bytes.Buffer
}

// NewTestIO returns streams that read input and record output; terminal
// says whether Out pretends to be a terminal.
func NewTestIO(input string, terminal bool) *TestIO {
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	return &TestIO{
		IOStreams: &IOStreams{In: strings.NewReader(input), Out: out, ErrOut: errOut, Terminal: terminal},
		Out:       out,
		ErrOut:    errOut,
	}
}

package smtpserver

import (
	"bytes"

	"github.com/emersion/go-sasl"
)

// plainServer is SASL PLAIN (RFC 4616) read as Postal reads it: of the
// NUL-separated fields the last is the password (the SMTP credential's key)
// and the ones before it (authorization and user name) are free-form.
type plainServer struct {
	authenticate  func(password string) error
	protocolError func() error
	done          bool
}

var _ sasl.Server = (*plainServer)(nil)

// Next asks for the response when the client gave none, then checks it.
func (p *plainServer) Next(response []byte) ([]byte, bool, error) {
	if p.done {
		return nil, true, p.protocolError()
	}
	if response == nil {
		return []byte{}, false, nil
	}
	p.done = true
	fields := bytes.Split(response, []byte{0})
	if len(fields) < 2 {
		return nil, true, p.protocolError()
	}
	return nil, true, p.authenticate(string(fields[len(fields)-1]))
}

// loginServer is the LOGIN mechanism: the user name (free-form, ignored)
// and then the password, each asked for with Postal's prompts.
type loginServer struct {
	authenticate  func(password string) error
	protocolError func() error
	step          int
}

var _ sasl.Server = (*loginServer)(nil)

// Next walks the user name / password exchange; a user name given as the
// initial response skips the first prompt.
func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		if response == nil {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.step = 2
		return []byte("Password:"), false, nil
	case 1:
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.authenticate(string(response))
	default:
		return nil, true, l.protocolError()
	}
}

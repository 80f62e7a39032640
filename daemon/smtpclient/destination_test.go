package smtpclient

import (
	"net"
	"testing"
)

func TestParseSSLMode(t *testing.T) {
	tests := []struct {
		in      string
		want    SSLMode
		wantErr bool
	}{
		{"None", SSLNone, false}, {"none", SSLNone, false},
		{"Auto", SSLAuto, false}, {"", SSLAuto, false},
		{"STARTTLS", SSLStartTLS, false}, {"StartTLS", SSLStartTLS, false},
		{"TLS", SSLTLS, false}, {" tls ", SSLTLS, false},
		{"SSL", "", true}, {"start_tls", "", true},
	}
	for _, tt := range tests {
		got, err := ParseSSLMode(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseSSLMode(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDestinationKey(t *testing.T) {
	base := Destination{Host: "mx.example.com", Port: 25, SSLMode: SSLAuto}
	tests := []struct {
		name string
		a, b Destination
		same bool
	}{
		{"host case does not matter", base, Destination{Host: "MX.Example.com", Port: 25, SSLMode: SSLAuto}, true},
		{"zero port is 25", base, Destination{Host: "mx.example.com", SSLMode: SSLAuto}, true},
		{"zero mode is Auto", base, Destination{Host: "mx.example.com", Port: 25}, true},
		{"ServerName equal to Host is the default", base, Destination{Host: "mx.example.com", Port: 25, ServerName: "mx.example.com"}, true},
		{"port differs", base, Destination{Host: "mx.example.com", Port: 587}, false},
		{"mode differs", base, Destination{Host: "mx.example.com", Port: 25, SSLMode: SSLNone}, false},
		{"local address differs", base, Destination{Host: "mx.example.com", Port: 25, LocalAddr: net.IPv4(192, 0, 2, 1)}, false},
		{"TLS name differs", base, Destination{Host: "mx.example.com", Port: 25, ServerName: "other.example.com"}, false},
		{"implicit TLS defaults to 465", Destination{Host: "h", SSLMode: SSLTLS}, Destination{Host: "h", Port: 465, SSLMode: SSLTLS}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Key() == tt.b.Key(); got != tt.same {
				t.Errorf("Key(%+v) = %q, Key(%+v) = %q; same = %v, want %v", tt.a, tt.a.Key(), tt.b, tt.b.Key(), got, tt.same)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		e    *Error
		want string
	}{
		{&Error{Stage: StageRcpt, Code: 550, Enhanced: "5.1.1", Message: "no such user", Permanent: true}, "smtp rcpt: 550 5.1.1 no such user"},
		{&Error{Stage: StageDial, Err: net.ErrClosed}, "smtp dial: " + net.ErrClosed.Error()},
		{&Error{Stage: StageData, Code: 451, Err: net.ErrClosed}, "smtp data: 451: " + net.ErrClosed.Error()},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

package api

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
)

// Envelope statuses.
const (
	statusSuccess    = "success"
	statusError      = "error"
	statusParamError = "parameter-error"
)

// object is a JSON object that keeps its keys in the order given (Postal's
// responses have a fixed key order, and golden tests compare bytes).
type object []field

type field struct {
	k string
	v any
}

// MarshalJSON writes the fields in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(&b, f.k)
		b.WriteByte(':')
		// The common scalar types are written directly; the rest through
		// encoding/json.
		switch v := f.v.(type) {
		case nil:
			b.WriteString("null")
		case string:
			writeString(&b, v)
		case bool:
			b.WriteString(strconv.FormatBool(v))
		case int64:
			b.WriteString(strconv.FormatInt(v, 10))
		case int:
			b.WriteString(strconv.Itoa(v))
		case object:
			sub, err := v.MarshalJSON()
			if err != nil {
				return nil, err
			}
			b.Write(sub)
		default:
			enc, err := marshal(v)
			if err != nil {
				return nil, err
			}
			b.Write(enc)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// writeString writes s as a JSON string, as marshal would (no HTML
// escaping; invalid UTF-8 replaced).
func writeString(b *bytes.Buffer, s string) {
	safe := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			safe = false
			break
		}
	}
	if safe {
		b.WriteByte('"')
		b.WriteString(s)
		b.WriteByte('"')
		return
	}
	enc, _ := marshal(s) // a string always encodes
	b.Write(enc)
}

// marshal encodes v without escaping <, > and & (Postal's JSON does not,
// and Message-IDs are full of them).
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// float is a JSON number that always has a fraction (1.0, not 1), as Ruby
// writes a Float; clients with strict types (postal-php) read it as one.
type float float64

// MarshalJSON writes f with at least one decimal.
func (f float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	b := strconv.AppendFloat(nil, v, 'f', -1, 64)
	if !bytes.ContainsAny(b, ".e") {
		b = append(b, '.', '0')
	}
	return b, nil
}

// envelope is every handled answer: {status, time, flags: {}, data}.
type envelope struct {
	Status string   `json:"status"`
	Time   float    `json:"time"`
	Flags  struct{} `json:"flags"`
	Data   any      `json:"data"`
}

// apiError is an error answer: status "error" with data {attrs..., code}
// (message first when there is one), or a parameter-error {message}.
type apiError struct {
	status  string
	code    string
	message string
	attrs   object // extra data between message and code
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func (e *apiError) data() object {
	var o object
	if e.message != "" {
		o = append(o, field{"message", e.message})
	}
	o = append(o, e.attrs...)
	if e.status == statusError {
		o = append(o, field{"code", e.code})
	}
	return o
}

// The error table: Postal's codes and texts, then ours (documented in
// docs/api.md).
var (
	errAccessDenied = &apiError{status: statusError, code: "AccessDenied", message: "Must be authenticated as a server."}
	errSuspended    = &apiError{status: statusError, code: "ServerSuspended"}

	errNoRecipients  = sendErr("NoRecipients", "There are no recipients defined to receive this message")
	errTooManyTo     = sendErr("TooManyToAddresses", "The maximum number of To addresses has been reached (maximum 50)")
	errTooManyCC     = sendErr("TooManyCCAddresses", "The maximum number of CC addresses has been reached (maximum 50)")
	errTooManyBCC    = sendErr("TooManyBCCAddresses", "The maximum number of BCC addresses has been reached (maximum 50)")
	errNoContent     = sendErr("NoContent", "There is no content defined for this e-mail")
	errFromMissing   = sendErr("FromAddressMissing", "The From address is missing and is required")
	errUnauthFrom    = sendErr("UnauthenticatedFromAddress", "The From address is not authorised to send mail from this server")
	errAttachNoName  = sendErr("AttachmentMissingName", "An attachment is missing a name")
	errAttachNoData  = sendErr("AttachmentMissingData", "An attachment is missing data")
	errUnauthRawFrom = &apiError{status: statusError, code: "UnauthenticatedFromAddress"}

	// Ours.
	errRateLimited       = sendErr("RateLimitExceeded", "Too many requests for this API key; retry after the time in Retry-After")
	errTooManyAttach     = sendErr("TooManyAttachments", "The maximum number of attachments has been reached (maximum 100)")
	errTooManyHeaders    = sendErr("TooManyHeaders", "The maximum number of custom headers has been reached (maximum 100)")
	errInvalidHeader     = sendErr("InvalidHeader", "A custom header name is not a valid header field name")
	errIdemInProgress    = sendErr("IdempotencyKeyInProgress", "A request with this Idempotency-Key is still being processed; retry later")
	errIdemReused        = sendErr("IdempotencyKeyReused", "This Idempotency-Key was used for a different request")
	errInternal          = sendErr("InternalError", "The request could not be completed; nothing was stored; retry later")
	errInvalidRecipients = sendErr("InvalidRecipient", "A recipient is not a valid e-mail address")
)

func sendErr(code, message string) *apiError {
	return &apiError{status: statusError, code: code, message: message}
}

func paramErr(message string) *apiError {
	return &apiError{status: statusParamError, message: message}
}

// with returns a copy of e carrying extra data attributes.
func (e *apiError) with(attrs ...field) *apiError {
	c := *e
	c.attrs = append(append(object(nil), e.attrs...), attrs...)
	return &c
}

// withMessage returns a copy of e with another message.
func (e *apiError) withMessage(m string) *apiError {
	c := *e
	c.message = m
	return &c
}

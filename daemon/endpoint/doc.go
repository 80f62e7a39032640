// Package endpoint delivers incoming mail to a route's HTTP endpoint, as
// Postal does: the message as a Hash or RawMessage payload, encoded as JSON
// or form data, signed like webhooks (X-Postal-Signature, -256, -KID), and
// the answer mapped to Postal's result (2xx sent; 5xx and no answer retried;
// 429 failed without a bounce; anything else failed with a bounce).
//
// It is a leaf: values in, values out. It neither reads nor writes the
// store; the caller records the Result as a delivery.
package endpoint

package store

import "github.com/postalgo/postal/daemon/webhook"

// WebhookPayload returns m as Postal describes a message in webhook payloads.
// Messages are not inspected for spam yet, so spam_status is "NotChecked".
func (m *Message) WebhookPayload() webhook.Message {
	return webhook.Message{ID: m.ID, Token: m.Token, Direction: m.Scope, MessageID: m.MessageID, To: m.RcptTo,
		From: m.MailFrom, Subject: m.Subject, Timestamp: webhook.Seconds(m.Timestamp), SpamStatus: "NotChecked",
		Tag: webhook.OptionalString(m.Tag)}
}

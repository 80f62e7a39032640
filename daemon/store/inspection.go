package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
)

// SpamCheck is one rule a spam scanner matched (Postal's spam_checks row).
type SpamCheck struct {
	Code        string  `json:"code"`
	Score       float64 `json:"score"`
	Description string  `json:"description"`
}

// NewInspection is a message's inspection, recorded as an effect of the
// outcome of the attempt that made it (Effects.Inspection): the message is
// marked inspected with its spam flag and score, threat flag and details
// (empty: no virus scanner looked), why it went (partly) unscanned when it
// did, and its checks replace any recorded before.
type NewInspection struct {
	Spam          bool
	SpamScore     float64
	Threat        bool
	ThreatDetails string
	Skipped       string
	Checks        []SpamCheck
}

// Caps on stored inspection text, in bytes.
const (
	maxCheckCode        = 64
	maxCheckDescription = 256
	maxThreatDetails    = 256
	maxSkipped          = 512
	maxChecks           = 100
)

// recordInspection writes in for message id inside t.
func recordInspection(ctx context.Context, t tx, id int64, in *NewInspection) error {
	for _, st := range inspectionStatements(id, in) {
		if _, err := t.exec(ctx, st.q, st.args...); err != nil {
			return fmt.Errorf("inspection of message %d: %w", id, err)
		}
	}
	return nil
}

// inspectionStatements are the statements that record in for message id:
// the message's flags, then its checks replacing any recorded before.
func inspectionStatements(id int64, in *NewInspection) []statement {
	score := in.SpamScore
	if math.IsNaN(score) || math.IsInf(score, 0) {
		score = 0
	}
	out := []statement{
		{q: `UPDATE messages SET inspected = TRUE, spam = ?, spam_score = ?, threat = ?,
		threat_details = ?, inspection_skipped = ? WHERE id = ?`, args: []any{in.Spam, score, in.Threat,
			nullString(truncate(in.ThreatDetails, maxThreatDetails)), nullString(truncate(in.Skipped, maxSkipped)), id}},
		{q: `DELETE FROM spam_checks WHERE message_id = ?`, args: []any{id}},
	}
	for i, c := range in.Checks {
		if i == maxChecks {
			break
		}
		s := c.Score
		if math.IsNaN(s) || math.IsInf(s, 0) {
			s = 0
		}
		out = append(out, statement{q: `INSERT INTO spam_checks (message_id, code, score, description) VALUES (?, ?, ?, ?)`,
			args: []any{id, truncate(c.Code, maxCheckCode), s, truncate(c.Description, maxCheckDescription)}})
	}
	return out
}

// Inspections returns the inspection state of the messages ids that exist,
// by id.
func (s *Store) Inspections(ctx context.Context, ids []int64) (map[int64]*Inspection, error) {
	out := make(map[int64]*Inspection, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := s.query(ctx, `SELECT id, inspected, spam, spam_score, threat, threat_details, inspection_skipped
		FROM messages WHERE id IN (`+placeholders(len(ids))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("inspections: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id               int64
			in               Inspection
			details, skipped sql.NullString
		)
		if err := rows.Scan(&id, &in.Inspected, &in.Spam, &in.SpamScore, &in.Threat, &details, &skipped); err != nil {
			return nil, fmt.Errorf("inspections: %w", err)
		}
		in.ThreatDetails, in.Skipped = details.String, skipped.String
		out[id] = &in
	}
	return out, rows.Err()
}

// SpamChecks lists message id's spam checks, highest absolute score first.
func (s *Store) SpamChecks(ctx context.Context, id int64) ([]SpamCheck, error) {
	rows, err := s.query(ctx, `SELECT code, score, description FROM spam_checks WHERE message_id = ?
		ORDER BY ABS(score) DESC, code`, id)
	if err != nil {
		return nil, fmt.Errorf("spam checks of message %d: %w", id, err)
	}
	defer rows.Close()
	var cs []SpamCheck
	for rows.Next() {
		var c SpamCheck
		if err := rows.Scan(&c.Code, &c.Score, &c.Description); err != nil {
			return nil, fmt.Errorf("spam checks of message %d: %w", id, err)
		}
		cs = append(cs, c)
	}
	return cs, rows.Err()
}

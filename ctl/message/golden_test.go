package message_test

// volatile are the JSON keys whose values differ between runs.
func volatile(key string) bool {
	switch key {
	case "token", "timestamp", "created_at", "retry_after", "locked_until", "last_delivery_attempt", "dispatch_error":
		return true
	}
	return false
}

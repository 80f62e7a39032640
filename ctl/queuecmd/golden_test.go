package queuecmd_test

// volatile are the JSON keys whose values differ between runs.
func volatile(key string) bool {
	switch key {
	case "stream_id", "time", "created_at", "retry_after", "idle_ms", "locked_until", "redis_error":
		return true
	}
	return false
}

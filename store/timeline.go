package store

import "time"

// The spans of the timeline's records: hours over the retention window,
// and minutes over the last MinuteWindow.
const (
	TimelineHour   = time.Hour
	TimelineMinute = time.Minute
	// MinuteWindow is how long per-minute records are kept: a write
	// removes its subscription's older ones, the janitor the rest.
	MinuteWindow = time.Hour
)

// Outcomes are one subscription's outcomes in the span (an hour or a
// minute) starting at Start: the events that reached success or failure
// in it. A plain record: a table (subscription_id, start, succeeded,
// failed) per span in a relational backend.
type Outcomes struct {
	Start     time.Time
	Succeeded uint64
	Failed    uint64
}

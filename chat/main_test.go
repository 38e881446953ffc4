package chat

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the view and its commands start has ended by the end of
// the tests (teatest's own signal watcher stays, by its design).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/charmbracelet/x/exp/teatest.NewTestModel.func2"))
}

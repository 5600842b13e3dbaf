package relay

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCalls: answers reach the call with their request id, an Error answer
// is a *RelayError, Close ends waiting calls with its reason, and a call
// after Close fails at once.
func TestCalls(t *testing.T) {
	var c Calls
	sent := make(chan uint32, 4)
	write := func(b []byte) error {
		f, err := Decode(b)
		if err != nil {
			return err
		}
		sent <- f.(*Fetch).Req
		return nil
	}
	build := func(req uint32) Frame { return &Fetch{Req: req} }
	ctx := context.Background()

	got := make(chan error, 1)
	go func() {
		f, err := c.Do(ctx, write, build)
		if err == nil {
			if _, ok := f.(*Bundle); !ok {
				err = errors.New("wrong answer type")
			}
		}
		got <- err
	}()
	req := <-sent
	if c.Answer(&OK{Req: req + 100}) != true {
		t.Fatal("an answer for an unknown request is still an answer")
	}
	if c.Answer(&Envelope{}) {
		t.Fatal("an envelope is not an answer")
	}
	c.Answer(&Bundle{Req: req})
	if err := <-got; err != nil {
		t.Fatal(err)
	}

	go func() { _, err := c.Do(ctx, write, build); got <- err }()
	req = <-sent
	c.Answer(&Error{Req: req, Code: CodeNoPrekeys, Message: "none"})
	var re *RelayError
	if err := <-got; !errors.As(err, &re) || re.Code != CodeNoPrekeys {
		t.Fatalf("Error answer gave %v", err)
	}

	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := c.Do(cctx, write, build); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unanswered call: %v", err)
	}
	<-sent

	go func() { _, err := c.Do(ctx, write, build); got <- err }()
	<-sent
	why := errors.New("socket gone")
	if !c.Close(why) || c.Close(errors.New("later")) {
		t.Fatal("Close reports the first close only")
	}
	if err := <-got; !errors.Is(err, why) {
		t.Fatalf("waiting call after Close: %v", err)
	}
	if _, err := c.Do(ctx, write, build); !errors.Is(err, why) || !c.Closed() {
		t.Fatalf("call after Close: %v", err)
	}
}

package memstore

import (
	"context"
	"testing"

	"github.com/parley-im/parley/client/storage/storagetest"
)

func TestConformance(t *testing.T) {
	if err := storagetest.Run(context.Background(), New()); err != nil {
		t.Fatal(err)
	}
}

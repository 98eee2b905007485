package handlers_test

import (
	"context"
	"maps"
	"sync"
	"testing"

	"github.com/switchyard-go/switchyard/handlers"
)

func TestAnalyticsCountsByType(t *testing.T) {
	a := handlers.NewAnalytics()
	placed := handlers.Count[handlers.OrderPlaced](a)
	rejected := handlers.Count[handlers.InventoryRejected](a)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { _ = placed(context.Background(), handlers.OrderPlaced{}) })
		wg.Go(func() { _ = rejected(context.Background(), handlers.InventoryRejected{}) })
	}
	wg.Wait()
	_ = placed(context.Background(), handlers.OrderPlaced{})
	want := map[string]int{handlers.TypeOrderPlaced: 51, handlers.TypeInventoryRejected: 50}
	got := a.Counts()
	if !maps.Equal(got, want) {
		t.Fatalf("Counts() = %v, want %v", got, want)
	}
	got[handlers.TypeOrderPlaced] = 0 // a copy
	if a.Counts()[handlers.TypeOrderPlaced] != 51 {
		t.Fatal("Counts() returned the live map")
	}
	var zero handlers.Analytics
	if len(zero.Counts()) != 0 {
		t.Fatal("zero Analytics not empty")
	}
}

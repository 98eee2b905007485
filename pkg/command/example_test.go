package command_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/command"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/service"
)

type Account struct{ Balance int }

type Deposit struct {
	AccountID string `json:"account_id"`
	Amount    int    `json:"amount"`
}

func (Deposit) EventType() string  { return "bank.deposit" }
func (Deposit) EventVersion() int  { return 1 }
func (c Deposit) EventKey() string { return c.AccountID }

type Deposited struct {
	Amount int `json:"amount"`
}

func (Deposited) EventType() string { return "bank.deposited" }
func (Deposited) EventVersion() int { return 1 }

func Example() {
	b, _ := memory.New(memory.Config{}, nil)
	defer b.Close()
	svc := service.New(b)
	bus, _ := command.New(svc, command.Config{Topic: "bank.commands"})

	dec := eventstore.NewDecoder(nil, nil)
	_ = eventstore.Register[Deposited](dec)
	repo := &eventstore.Repository[Account]{
		Store:   eventstore.NewMemory(eventstore.Encoder{}),
		Decoder: dec,
		Apply: func(a Account, e event.Event) Account {
			if d, ok := e.(Deposited); ok {
				a.Balance += d.Amount
			}
			return a
		},
	}
	_ = command.Handle(bus, "bank.deposit", command.OnAggregate(repo,
		func(a *eventstore.Aggregate[Account], c Deposit) error {
			if c.Amount <= 0 {
				return command.Reject(errors.New("a deposit must be positive"))
			}
			a.Record(Deposited{Amount: c.Amount})
			return nil
		}))

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- svc.Run(ctx) }()
	<-svc.Ready()

	res, err := bus.SendAndWait(ctx, Deposit{AccountID: "acc-1", Amount: 50})
	fmt.Println("version", res.Version, err)
	_, err = bus.SendAndWait(ctx, Deposit{AccountID: "acc-1", Amount: -5})
	fmt.Println("rejected:", command.IsRejected(err), err)
	a, _ := repo.Load(ctx, "acc-1")
	fmt.Println("balance", a.State.Balance)

	stop()
	<-done
	// Output:
	// version 1 <nil>
	// rejected: true command rejected: a deposit must be positive
	// balance 50
}

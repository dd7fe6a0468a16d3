// go run ./examples/quickstart [URI]: a pool, concurrent queries, a
// transaction and an error, printed as they happen.
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
	"time"

	"sqlpool.dev/sqlpool"
)

func main() {
	dir, err := os.MkdirTemp("", "sqlpool-go-demo")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	uri := "sqlite:" + filepath.Join(dir, "demo.db")
	if len(os.Args) > 1 {
		uri = os.Args[1]
	}
	if err := run(uri); err != nil {
		log.Fatal(err)
	}
}

func run(uri string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := sqlpool.Open(uri, sqlpool.Options{"max_size": "5"})
	if err != nil {
		return err
	}
	defer pool.Close()
	fmt.Println("go: pool of 5 open")
	for _, q := range []string{"DROP TABLE IF EXISTS demo_go",
		"CREATE TABLE demo_go (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)"} {
		if _, err := pool.ExecContext(ctx, q); err != nil {
			return err
		}
	}

	tens := make([]int64, 3)
	var wg sync.WaitGroup
	for i := range tens {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_ = pool.QueryRowContext(ctx, "SELECT CAST(:n AS BIGINT) * 10", sql.Named("n", i+1)).Scan(&tens[i])
		}(i)
	}
	wg.Wait()
	fmt.Println("go: 3 concurrent queries ->", tens)

	if _, err := pool.ExecContext(ctx, "INSERT INTO demo_go (id, name) VALUES (:id, :name)",
		sql.Named("id", 1), sql.Named("name", "ada")); err != nil {
		return err
	}
	tx, err := pool.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO demo_go (id, name) VALUES (2, 'grace')"); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Rollback(); err != nil {
		return err
	}
	fmt.Println("go: transaction rolled back")

	rows, err := pool.QueryContext(ctx, "SELECT id, name FROM demo_go ORDER BY id")
	if err != nil {
		return err
	}
	for rows.Next() {
		fmt.Println("go: row ->", rows.Map())
	}
	rows.Close()

	_, err = pool.ExecContext(ctx, "INSERT INTO demo_go (id, name) VALUES (3, 'ada')")
	var e *sqlpool.Error
	if errors.As(err, &e) {
		fmt.Printf("go: %s SQLSTATE %s: %s\n", e.Status, e.SQLState, e.Message)
	}
	if _, err := pool.ExecContext(ctx, "DROP TABLE demo_go"); err != nil {
		return err
	}
	if err := pool.Close(); err != nil {
		return err
	}
	fmt.Println("go: pool closed")
	return nil
}

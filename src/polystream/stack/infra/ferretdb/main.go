// Command ferretdb runs an embedded FerretDB 1.x (MongoDB wire protocol) server
// backed by PostgreSQL. It is a thin wrapper around
// github.com/FerretDB/FerretDB/ferretdb, used by polystream's supervisor.
//
// The upstream cmd/ferretdb binary cannot be built with `go install` because it
// needs generated build/version/*.txt files (FerretDB issue 2982). The embeddable
// package does not need them; it only reports version "unknown", which we replace
// with the module version recorded in our binary's build info.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/FerretDB/FerretDB/build/version"
	"github.com/FerretDB/FerretDB/ferretdb"
)

const ferretModule = "github.com/FerretDB/FerretDB"

func main() {
	listenAddr := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on (host:port)")
	pgURL := flag.String("postgresql-url", "", "PostgreSQL URL, e.g. postgres://postgres@127.0.0.1:5432/ferretdb (required; the database must exist)")
	logLevel := flag.String("log-level", "info", "log level: debug, info, warn, error")
	printVersion := flag.Bool("version", false, "print version and exit")
	flag.Parse()

	v := moduleVersion()

	if *printVersion {
		fmt.Printf("ferretdb %s (embedded)\n", v)
		return
	}

	if flag.NArg() > 0 {
		fatalf("unexpected arguments: %q", flag.Args())
	}

	if *pgURL == "" {
		fatalf("-postgresql-url is required")
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fatalf("invalid -log-level %q: %s", *logLevel, err)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	// Embedded builds report "unknown" as ferretdbVersion in buildInfo; fix that.
	if info := version.Get(); info != nil && v != "" {
		info.Version = v
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// After the first signal, restore default signal handling so that a second
	// SIGTERM/SIGINT kills the process immediately. FerretDB waits up to ~3s for
	// connected clients before it returns from Run.
	go func() {
		<-ctx.Done()
		slog.Info("Signal received, shutting down (send again to force)")
		stop()
	}()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *listenAddr},
		Logger:        logger,
		Handler:       "postgresql",
		PostgreSQLURL: *pgURL,
	})
	if err != nil {
		fatalf("failed to start: %s", err)
	}

	// ferretdb.New already bound the listener, so the address is final here
	// (also for port 0). PostgreSQL is only contacted lazily, on first use.
	fmt.Printf("ferretdb %s listening on %s (backend postgresql %s)\n", v, f.MongoDBURI(), redact(*pgURL))

	if err = f.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fatalf("run failed: %s", err)
	}

	fmt.Println("ferretdb stopped")
}

// moduleVersion returns the FerretDB module version compiled into this binary.
func moduleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}

	for _, d := range bi.Deps {
		if d.Path == ferretModule {
			if d.Replace != nil && d.Replace.Version != "" {
				return d.Replace.Version
			}

			return d.Version
		}
	}

	return "unknown"
}

// redact hides the password in a PostgreSQL URL for logging.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "(connection string)"
	}

	return u.Redacted()
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "ferretdb: "+format+"\n", args...)
	os.Exit(1)
}

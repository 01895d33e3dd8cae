"""What every long-running consumer of the platform shares: the consumer loop (poll, process,
flush, commit, rewind), backoff, dead letters, and running several of them in one process with
a bounded shutdown. The sinks (`polystream.sinks.worker`) and the auditor
(`polystream.audit.worker`) only say what to do with a batch."""

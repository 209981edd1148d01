"""The three insurer API styles the sandbox speaks: synchronous JSON, submit-then-poll, XML."""

#!/usr/bin/env bash
# Make sure PostgreSQL and RabbitMQ answer on this machine, starting them if they do not.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local name=$1 port=$2
  for _ in $(seq 1 60); do
    port_open "$port" && return 0
    sleep 1
  done
  echo "ensure-services: $name is not answering on 127.0.0.1:$port" >&2
  return 1
}

if ! port_open 5432; then
  echo "ensure-services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
fi
wait_port PostgreSQL 5432

if ! port_open 5672; then
  echo "ensure-services: starting RabbitMQ"
  rabbitmq-server -detached
fi
wait_port RabbitMQ 5672
# The broker accepts TCP before it is ready for AMQP; wait for the application itself.
for _ in $(seq 1 60); do
  rabbitmqctl -q await_startup >/dev/null 2>&1 && break
  sleep 1
done
# The management API is used by the fault tests (forcing connections closed) and by operators.
# Required: without it those tests could only fail, so say so here instead.
if ! port_open 15672; then
  echo "ensure-services: enabling the RabbitMQ management plugin"
  rabbitmq-plugins enable --quiet rabbitmq_management
  wait_port "RabbitMQ management" 15672
fi
echo "ensure-services: PostgreSQL and RabbitMQ are up"

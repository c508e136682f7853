#!/bin/sh
echo "worker: $(cat /opt/worker/greeting)"

#!/bin/sh
cat /etc/motd
echo "running as $(id -u) in $(pwd)"

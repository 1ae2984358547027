#!/bin/sh
echo "${GREETING:-hello from rbk}"

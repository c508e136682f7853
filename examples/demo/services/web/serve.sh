#!/bin/sh
echo "web: serving $(wc -c < /srv/web/index.html) bytes"

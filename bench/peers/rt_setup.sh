#!/bin/sh
# Request Tracker 5 from Debian's packages, on the benchmark's PostgreSQL, served by its
# own standalone server on 127.0.0.1:18100. Run as root; safe to run again.
set -eu
PORT=${RT_PORT:-18100}
DB=${RT_DATABASE:-itsm_bench_rt}
PG="psql -h 127.0.0.1 -U postgres -d postgres -qAt"

DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    request-tracker5 rt5-db-postgresql rt5-standalone >/dev/null
# Debian's dbconfig-common creates the database "rtdb"; the benchmark keeps its databases
# under one name prefix, so it is renamed (or created) as $DB.
if [ "$($PG -c "select 1 from pg_database where datname = 'rtdb'")" = 1 ]; then
    $PG -c "ALTER DATABASE rtdb RENAME TO $DB"
fi
cat > /etc/request-tracker5/RT_SiteConfig.d/90-itsm-bench.pm <<CONF
Set(\$DatabaseName, '$DB');
Set(\$DatabaseHost, '127.0.0.1');
Set(\$WebPath, '');
Set(\$WebDomain, '127.0.0.1');
Set(\$WebPort, $PORT);
Set(\$WebBaseURL, 'http://127.0.0.1:$PORT');
Set(\$LogToSTDERR, 'error');
Set(\$LogToSyslog, 'error');
CONF
if [ "$($PG -c "select 1 from pg_database where datname = '$DB'")" != 1 ]; then
    $PG -c "CREATE DATABASE $DB OWNER rtuser"
    /usr/sbin/rt-setup-database-5 --action init --skip-create --dba postgres \
        --dba-password '' </dev/null
fi
echo "RT ready: /usr/share/request-tracker5/libexec/rt-server --port $PORT"

#!/usr/bin/env python3
"""Create the reference Neutron's sqlite schema from its models.

`neutron-db-manage upgrade heads` fails on sqlite ("No support for ALTER
of constraints"), so the tables come from Neutron's model metadata; the
caller then runs `neutron-db-manage stamp heads`. The database is put in
WAL mode first: without it about one run in eight hits "database is
locked".
"""
import sys

import sqlalchemy
from neutron.db.migration.models import head


def main(path):
    engine = sqlalchemy.create_engine("sqlite:///" + path)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    head.get_metadata().create_all(engine)


if __name__ == "__main__":
    main(sys.argv[1])

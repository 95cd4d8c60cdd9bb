/*
 * ledger_backup.c — `waybill backup`: a RocksDB checkpoint of the ledger
 * (SST files hard-linked when on the same filesystem, the MANIFEST and
 * WAL copied). It works on a read-only instance, so it needs no help from
 * a running waybill-ledger; the caller verifies the copy, because a live
 * ledger may compact away a file between the open and the checkpoint.
 */
#include "ledger_internal.h"

wb_err wb_ledger_backup(wb_ledger *l, const char *dir, char *msg,
			size_t msglen)
{
	char *err = NULL;
	rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(l->db,
								    &err);
	if (!err)
		rocksdb_checkpoint_create(cp, dir, 0, &err);
	if (cp)
		rocksdb_checkpoint_object_destroy(cp);
	if (err) {
		wb_fail(msg, msglen, WB_ESTORE, "checkpoint into %s: %s", dir,
			err);
		rocksdb_free(err);
		return WB_ESTORE;
	}
	return WB_OK;
}

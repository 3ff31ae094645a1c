/* lethe h5io: small HDF5 helpers shared by the writers of run files. */
#ifndef LETHE_H5IO_H
#define LETHE_H5IO_H

#include <hdf5.h>

#include "lethe/core.h"

/* Write a 1-D dataset (creating intermediate groups) of n values. */
LT_WUR lt_status lt_h5_write_f64(lt_ctx *ctx, hid_t loc, const char *path, const double *v,
                                 size_t n);
/* Scalar attributes on an object (file, group or dataset), replacing any of that name.
 * In a file opened with the MPI-IO driver every rank calls with the same value. */
LT_WUR lt_status lt_h5_attr_str(lt_ctx *ctx, hid_t obj, const char *name, const char *value);
LT_WUR lt_status lt_h5_attr_i64(lt_ctx *ctx, hid_t obj, const char *name, int64_t value);
LT_WUR lt_status lt_h5_attr_f64(lt_ctx *ctx, hid_t obj, const char *name, double value);

#endif

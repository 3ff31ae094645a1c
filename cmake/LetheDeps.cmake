# Dependencies of lethe, found the way Debian 12 ships them.
# BLIS has no .pc file and ScaLAPACK's .pc/CMake config are broken: plain find_library.

find_package(MPI REQUIRED COMPONENTS C)

# Parallel HDF5: prefer the openmpi flavour; refuse a serial build.
if(NOT HDF5_PREFER_PARALLEL)
  set(HDF5_PREFER_PARALLEL TRUE)
endif()
if(EXISTS /usr/include/hdf5/openmpi AND NOT HDF5_ROOT)
  set(LETHE_HDF5_INCLUDE /usr/include/hdf5/openmpi)
  find_library(LETHE_HDF5_LIB NAMES hdf5_openmpi hdf5 PATHS /usr/lib/x86_64-linux-gnu/hdf5/openmpi /usr/lib/x86_64-linux-gnu NO_DEFAULT_PATH)
else()
  find_package(HDF5 REQUIRED COMPONENTS C)
  set(LETHE_HDF5_INCLUDE ${HDF5_INCLUDE_DIRS})
  set(LETHE_HDF5_LIB ${HDF5_C_LIBRARIES})
endif()
if(NOT LETHE_HDF5_LIB)
  message(FATAL_ERROR "lethe: parallel HDF5 not found. On Debian: apt-get install libhdf5-openmpi-dev")
endif()
include(CheckSymbolExists)
set(CMAKE_REQUIRED_INCLUDES ${LETHE_HDF5_INCLUDE} ${MPI_C_INCLUDE_DIRS})
check_symbol_exists(H5_HAVE_PARALLEL "H5pubconf.h" LETHE_HDF5_IS_PARALLEL)
unset(CMAKE_REQUIRED_INCLUDES)
if(NOT LETHE_HDF5_IS_PARALLEL)
  message(FATAL_ERROR "lethe: the HDF5 found (${LETHE_HDF5_INCLUDE}) is a serial build; "
                      "lethe needs parallel HDF5 (MPI-IO). On Debian: apt-get install libhdf5-openmpi-dev")
endif()
add_library(lethe::hdf5 INTERFACE IMPORTED)
target_include_directories(lethe::hdf5 INTERFACE ${LETHE_HDF5_INCLUDE})
target_link_libraries(lethe::hdf5 INTERFACE ${LETHE_HDF5_LIB})

# BLIS
find_path(LETHE_BLIS_INCLUDE blis.h PATH_SUFFIXES blis x86_64-linux-gnu)
find_library(LETHE_BLIS_LIB NAMES blis)
if(NOT LETHE_BLIS_INCLUDE OR NOT LETHE_BLIS_LIB)
  message(FATAL_ERROR "lethe: BLIS not found. On Debian: apt-get install libblis-dev")
endif()
add_library(lethe::blis INTERFACE IMPORTED)
target_include_directories(lethe::blis INTERFACE ${LETHE_BLIS_INCLUDE})
target_link_libraries(lethe::blis INTERFACE ${LETHE_BLIS_LIB})

# ScaLAPACK (no C header: prototypes are declared where used)
find_library(LETHE_SCALAPACK_LIB NAMES scalapack-openmpi scalapack)
if(NOT LETHE_SCALAPACK_LIB)
  message(FATAL_ERROR "lethe: ScaLAPACK not found. On Debian: apt-get install libscalapack-openmpi-dev")
endif()

# LAPACK (serial reference of the ScaLAPACK tests and benchmark; ScaLAPACK needs it anyway)
find_library(LETHE_LAPACK_LIB NAMES lapack)
if(NOT LETHE_LAPACK_LIB)
  message(FATAL_ERROR "lethe: LAPACK not found. On Debian: apt-get install liblapack-dev")
endif()

# inih
find_path(LETHE_INIH_INCLUDE ini.h)
find_library(LETHE_INIH_LIB NAMES inih)
if(NOT LETHE_INIH_INCLUDE OR NOT LETHE_INIH_LIB)
  message(FATAL_ERROR "lethe: inih not found. On Debian: apt-get install libinih-dev")
endif()

find_package(ZLIB REQUIRED)
find_library(LETHE_M_LIB m)

/* qube.h — libqube's public API: include this one header. */
#pragma once

#define QUBE_INSIDE_H

#include "qube-error.h"
#include "qube-plugin-registry.h"
#include "qube-vm.h"
#include "qube-manager.h"
#include "qube-pool.h"
#include "qube-volume.h"
#include "qube-policy.h"
#include "qube-admin.h"
#include "qube-qrexec-daemon.h"
#include "qube-qrexec-client.h"
#include "qube-lifecycle.h"
#include "qube-dispvm.h"

#undef QUBE_INSIDE_H

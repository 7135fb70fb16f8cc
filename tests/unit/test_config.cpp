// The parsers behind GREENLD_MAX_BLOCKING_TIME, GREENLD_DUMP_SIGNAL and
// GREENLD_LOG_LEVEL: they must accept what the launcher accepts and refuse
// what it refuses (scripts/greenld, tests/integration/test_launcher.sh).
#include <signal.h>

#include <cstdint>

#include "config.h"
#include "support.h"

using namespace greenld;

TEST_CASE("parse_seconds takes decimal seconds from 0.001 to 3600, nothing else") {
    uint64_t ns = 0;
    CHECK(config::parse_seconds("0.1", &ns));
    CHECK(ns == 100000000);
    CHECK(config::parse_seconds("2", &ns));
    CHECK(ns == 2000000000);
    CHECK(config::parse_seconds(".5", &ns));
    CHECK(ns == 500000000);
    CHECK(config::parse_seconds("0.001", &ns));
    CHECK(ns == 1000000);
    CHECK(config::parse_seconds("3600", &ns));
    CHECK(config::parse_seconds("0.1234567891", &ns));  // beyond ns: truncated
    CHECK(ns == 123456789);
    for (const char* bad : {"", ".", "0", "0.0009", "3600.000000001", "3601", "-1", "+1", "1e3", "0x10", "1s",
                            " 1", "abc", "99999999999999999999"})
        CHECK_MESSAGE(!config::parse_seconds(bad, &ns), bad);
}

TEST_CASE("parse_signal takes names with or without SIG, RTMIN+n, numbers; refuses what cannot carry a dump") {
    int sig = 0;
    struct Good {
        const char* text;
        int sig;
    } good[] = {{"USR2", SIGUSR2}, {"SIGUSR2", SIGUSR2}, {"sigusr1", SIGUSR1}, {"12", 12}, {"QUIT", SIGQUIT},
                {"RTMIN", SIGRTMIN}, {"SIGRTMIN+2", SIGRTMIN + 2}, {"RTMAX-2", SIGRTMAX - 2}, {"HUP", SIGHUP}};
    for (const Good& g : good) {
        sig = 0;
        CHECK_MESSAGE(config::parse_signal(g.text, &sig), g.text);
        CHECK_MESSAGE(sig == g.sig, g.text);
    }
    for (const char* bad : {"", "KILL", "SIGSTOP", "SEGV", "BUS", "FPE", "ILL", "TRAP", "SYS", "9", "0", "65", "32",
                            "33", "63", "64", "RTMAX", "RTMAX-1", "SIG12", "NOPE", "USR2 ", "RTMIN+", "RTMIN-1", "RTMAX+1", "-12"})
        CHECK_MESSAGE(!config::parse_signal(bad, &sig), bad);
}

TEST_CASE("parse_log_level knows none, error, warning (warn), info, debug") {
    config::LogLevel l;
    CHECK((config::parse_log_level("none", &l) && l == config::LogLevel::none));
    CHECK((config::parse_log_level("error", &l) && l == config::LogLevel::error));
    CHECK((config::parse_log_level("warning", &l) && l == config::LogLevel::warning));
    CHECK((config::parse_log_level("warn", &l) && l == config::LogLevel::warning));
    CHECK((config::parse_log_level("info", &l) && l == config::LogLevel::info));
    CHECK((config::parse_log_level("debug", &l) && l == config::LogLevel::debug));
    for (const char* bad : {"", "loud", "3", "INFO", "debug2"}) CHECK_MESSAGE(!config::parse_log_level(bad, &l), bad);
}

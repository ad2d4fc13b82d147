import GridMonCore
import Testing

@Suite struct SettingValuesTests {
    @Test func durations() {
        #expect(SettingValues.seconds("1.5") == 1.5)
        #expect(SettingValues.seconds("500ms") == 0.5)
        #expect(SettingValues.seconds("10s") == 10)
        #expect(SettingValues.seconds("5m") == 300)
        #expect(SettingValues.seconds("24h") == 86_400)
        #expect(SettingValues.seconds("2d") == 172_800)
        for bad in ["", "5x", "s", "ms5", "1.5.5s", "inf", "nan"] { #expect(SettingValues.seconds(bad) == nil, "\(bad)") }
        #expect(SettingValues.seconds("-1") == -1)  // range is the caller's check, with its own message
    }

    @Test func sizesBoolsAndLists() {
        #expect(SettingValues.bytes("65536") == 65536)
        #expect(SettingValues.bytes("64MiB") == 64 << 20)
        #expect(SettingValues.bytes("2GiB") == 2 << 30)
        #expect(SettingValues.bytes("10KB") == 10_000)
        for bad in ["", "-1", "1.5MiB", "64mb", "99999999999999999GiB"] { #expect(SettingValues.bytes(bad) == nil, "\(bad)") }
        #expect(SettingValues.bool("TRUE") == true && SettingValues.bool("off") == false && SettingValues.bool("2") == nil)
        #expect(SettingValues.list(" a, b,,c ") == ["a", "b", "c"])
    }
}

import { describe, expect, it } from "vitest";
import { formatUnits, parseUnits } from "./money";

describe("amounts", () => {
  it("shows the smallest unit in whole units, exactly", () => {
    expect(formatUnits("9750", 2)).toBe("97.50");
    expect(formatUnits("-5", 2)).toBe("-0.05");
    expect(formatUnits("123456789012345678901", 18)).toBe("123.456789012345678901");
    expect(formatUnits("1000000", 0)).toBe("1,000,000");
    expect(() => formatUnits("1.5", 2)).toThrow();
  });

  it("reads what a person types into the smallest unit, without floats", () => {
    expect(parseUnits("12.5", 2)).toEqual({ units: "1250" });
    expect(parseUnits(" 1,000 ", 2)).toEqual({ units: "100000" });
    expect(parseUnits("0.000000000000000001", 18)).toEqual({ units: "1" });
    expect(parseUnits("9007199254740993", 0)).toEqual({ units: "9007199254740993" });
    for (const bad of ["", "abc", "-5", "1e3", "1.2.3", "NaN", "Infinity"]) {
      expect(parseUnits(bad, 2)).toHaveProperty("error");
    }
    expect(parseUnits("1.005", 2)).toEqual({ error: "at most 2 decimals" });
    expect(parseUnits("0", 2)).toEqual({ error: "more than zero" });
    expect(parseUnits("0.5", 0)).toEqual({ error: "whole units only" });
  });
});

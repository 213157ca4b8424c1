import { describe, expect, it } from "vitest";
import { formatUnits } from "./money";

describe("amounts", () => {
  it("shows the smallest unit in whole units, exactly", () => {
    expect(formatUnits("9750", 2)).toBe("97.50");
    expect(formatUnits("-5", 2)).toBe("-0.05");
    expect(formatUnits("123456789012345678901", 18)).toBe("123.456789012345678901");
    expect(formatUnits("1000000", 0)).toBe("1,000,000");
    expect(() => formatUnits("1.5", 2)).toThrow();
  });
});

// The OSAGO page: the application form with the server's checks, then the live offers.
// No build step: plain ES2020, served as is. Every value from the server is shown with
// textContent, never as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  const STATUS_TEXT = {
    pending: "ждём ответ", offered: "предложение", declined: "отказ", failed: "ошибка",
    unavailable: "недоступна", timed_out: "нет ответа",
  };
  // Our own failures come with technical reasons in English: a person gets these instead
  // (the technical one stays in the row's tooltip). A refusal is the insurer's own words.
  const STATUS_REASON = {
    failed: "Страховая ответила ошибкой — попробуйте позже",
    unavailable: "Сервис страховой сейчас недоступен",
    timed_out: "Страховая не ответила вовремя",
  };
  const COEFFICIENTS = [
    ["TB", "Базовый тариф страховой (ТБ), ₽"], ["KT", "Территория (КТ)"], ["KBM", "Бонус-малус (КБМ)"],
    ["KVS", "Возраст и стаж (КВС)"], ["KO", "Ограничение списка водителей (КО)"], ["KM", "Мощность (КМ)"],
    ["KS", "Период использования (КС)"], ["KN", "Нарушения (КН)"],
  ];
  const DRIVER_FIELDS = ["last_name", "first_name", "middle_name", "birth_date", "license.series",
                         "license.number", "license.issued", "experience_since"];
  const STORAGE_KEY = "osago.current";
  const RECONNECT_BASE_MS = 500;
  const RECONNECT_MAX_MS = 8000;
  // After the deadline the server closes every quote within seconds; past this the page
  // also asks over plain HTTP, in case WebSockets are blocked on the way.
  const REST_FALLBACK_AFTER_MS = 5000;

  // What the server's schema needs that the browser cannot know (GET /api/v1/reference);
  // the defaults keep the form usable if that request fails.
  const reference = {
    today: moscowToday(), region_codes: null, max_drivers: 5, policy_start_max_days: 60,
    name_max: 100, city_max: 100, make_model_max: 60, frame_number_max: 20,
  };

  // ---------- dates (ISO strings compare correctly as strings) ----------

  function moscowToday() {
    return new Intl.DateTimeFormat("en-CA", { timeZone: "Europe/Moscow" }).format(new Date());
  }
  function pad(n, width) { return String(n).padStart(width, "0"); }
  function isoOf(y, m, d) { return `${pad(y, 4)}-${pad(m, 2)}-${pad(d, 2)}`; }
  function parseIso(text) {
    const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
    if (!match) return null;
    const [y, m, d] = match.slice(1).map(Number);
    const probe = new Date(Date.UTC(y, m - 1, d));
    if (probe.getUTCFullYear() !== y || probe.getUTCMonth() !== m - 1 || probe.getUTCDate() !== d) return null;
    return { y, m, d };
  }
  function addYears(text, years) {
    const { y, m, d } = parseIso(text);
    // 29 February: a term in years ends on 28 February (Civil Code art. 192), as on the server.
    if (m === 2 && d === 29 && !parseIso(isoOf(y + years, 2, 29))) return isoOf(y + years, 2, 28);
    return isoOf(y + years, m, d);
  }
  function addDays(text, days) {
    const { y, m, d } = parseIso(text);
    const moved = new Date(Date.UTC(y, m - 1, d) + days * 86400000);
    return isoOf(moved.getUTCFullYear(), moved.getUTCMonth() + 1, moved.getUTCDate());
  }
  function ruDate(text) {
    const parsed = parseIso(text);
    return parsed ? `${pad(parsed.d, 2)}.${pad(parsed.m, 2)}.${parsed.y}` : text;
  }

  // ---------- field checks: the rules of shared/application_schema.py ----------

  const CYRILLIC_LOOKALIKES = "АВЕКМНОРСТУХ";
  const LATIN_LOOKALIKES = "ABEKMHOPCTYX";
  const HIDDEN = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}]/u;
  const NAME = /^[А-ЯЁа-яё]+(?:[ '-][А-ЯЁа-яё]+)*$/;
  const CITY = /^[А-ЯЁа-яё0-9 .-]*[А-ЯЁа-яё][А-ЯЁа-яё0-9 .-]*$/;

  class Invalid extends Error {}
  function fail(message) { throw new Invalid(message); }

  function translate(text, from, to) {
    let out = "";
    for (const ch of text) { const i = from.indexOf(ch); out += i >= 0 ? to[i] : ch; }
    return out;
  }
  function compact(value) { return value.replace(/\s+/g, "").toUpperCase(); }
  function cleanText(value, limit) {
    if ([...value].length > limit * 4) fail(`Не длиннее ${limit} символов`);
    if (HIDDEN.test(value)) fail("Уберите невидимые и управляющие символы");
    const text = value.normalize("NFKC").replace(/[’ʼ‘]/g, "'").replace(/[‐‑]/g, "-").replace(/ {2,}/g, " ").trim();
    if (!text) fail("Заполните поле");
    if ([...text].length > limit) fail(`Не длиннее ${limit} символов`);
    return text;
  }
  function name(value) {
    if (!NAME.test(cleanText(value, reference.name_max))) {
      fail("Русскими буквами; между частями — один пробел, дефис или апостроф");
    }
  }
  function city(value) {
    if (!CITY.test(cleanText(value, reference.city_max))) fail("Русские буквы, цифры, пробелы, дефисы или точки");
  }
  function makeOrModel(value) { cleanText(value, reference.make_model_max); }
  function wholeNumber(low, high) {
    return (value) => {
      if (typeof value !== "number") fail("Целое число");
      if (value < low || value > high) fail(`От ${low} до ${high}`);
    };
  }
  function modelYear(value) { wholeNumber(1900, Number(reference.today.slice(0, 4)) + 1)(value); }
  function vin(value) {
    if (!/^[A-HJ-NPR-Z0-9]{17}$/.test(translate(compact(value), CYRILLIC_LOOKALIKES, LATIN_LOOKALIKES))) {
      fail("17 знаков: латинские буквы без I, O, Q и цифры");
    }
  }
  function frameNumber(value) {
    const text = translate(compact(value), CYRILLIC_LOOKALIKES, LATIN_LOOKALIKES);
    if (text.length < 1 || text.length > reference.frame_number_max || !/^[A-Z0-9-]*[A-Z0-9][A-Z0-9-]*$/.test(text)) {
      fail(`От 1 до ${reference.frame_number_max} латинских букв, цифр или дефисов`);
    }
  }
  function regionKnown(code) { return !reference.region_codes || reference.region_codes.includes(code); }
  function plate(value) {
    const text = translate(compact(value), LATIN_LOOKALIKES, CYRILLIC_LOOKALIKES);
    const match = /^[АВЕКМНОРСТУХ](\d{3})[АВЕКМНОРСТУХ]{2}(\d{2,3})$/.exec(text);
    if (!match || match[1] === "000") {
      fail("Буква, 3 цифры (не 000), 2 буквы и код региона; буквы А В Е К М Н О Р С Т У Х");
    }
    if (!regionKnown(match[2])) fail("Такого кода региона нет");
  }
  function pattern(regex, message, fold) {
    return (value) => {
      let text = compact(value);
      if (fold) text = translate(text, LATIN_LOOKALIKES, CYRILLIC_LOOKALIKES);
      if (!regex.test(text)) fail(message);
    };
  }
  const documentSeries = pattern(/^[0-9]{2}[0-9А-ЯЁ]{2}$/, "2 цифры и ещё 2 буквы или цифры", true);
  const digitsOnly = pattern(/^[0-9]+$/, "Только цифры");
  const fourDigits = pattern(/^[0-9]{4}$/, "4 цифры");
  const sixDigits = pattern(/^[0-9]{6}$/, "6 цифр");
  const licenseSeries = pattern(/^[0-9]{2}(?:[0-9]{2}|[А-ЯЁ]{2})$/, "2 цифры и ещё 2 цифры или 2 русские буквы", true);
  function regionCode(value) {
    if (!/^[0-9]{2,3}$/.test(value)) fail("Код региона: 2 или 3 цифры");
    if (!regionKnown(value)) fail("Такого кода региона нет");
  }
  function oneOf(allowed, message) { return (value) => { if (!allowed.includes(value)) fail(message); }; }
  function date(value) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) fail("Дата в формате ДД.ММ.ГГГГ");
    if (!parseIso(value)) fail("Такой даты нет в календаре");
  }
  function pastDate(value) {
    date(value);
    if (value < "1900-01-01") fail("Не раньше 01.01.1900");
    if (value > reference.today) fail("Дата не может быть в будущем");
  }
  function adultBirthDate(value) {
    pastDate(value);
    if (addYears(value, 18) > reference.today) fail("Собственнику должно быть не меньше 18 лет");
  }
  function policyStart(value) {
    date(value);
    const first = addDays(reference.today, 1);
    const last = addDays(reference.today, reference.policy_start_max_days);
    if (value < first || value > last) fail(`С завтрашнего дня до ${ruDate(last)} (не дальше ${reference.policy_start_max_days} дней)`);
  }

  // Path (with * for a driver's index) → check of that field alone.
  const FIELD_CHECKS = {
    "vehicle.category": oneOf(["B"], "Пока принимается только категория B"),
    "vehicle.make": makeOrModel, "vehicle.model": makeOrModel,
    "vehicle.year": modelYear, "vehicle.power_hp": wholeNumber(1, 2000),
    "vehicle.vin": vin, "vehicle.body_number": frameNumber, "vehicle.chassis_number": frameNumber,
    "vehicle.plate": plate,
    "vehicle.purpose": oneOf(["personal", "taxi"], "Личная или такси"),
    "vehicle.document.type": oneOf(["sts", "pts", "epts"], "СТС, ПТС или электронный ПТС"),
    "vehicle.document.series": documentSeries, "vehicle.document.number": digitsOnly,
    "vehicle.document.issued": pastDate,
    "owner.last_name": name, "owner.first_name": name, "owner.middle_name": name,
    "owner.birth_date": adultBirthDate,
    "owner.passport.series": fourDigits, "owner.passport.number": sixDigits, "owner.passport.issued": pastDate,
    "owner.registration.region_code": regionCode, "owner.registration.city": city,
    "drivers.*.last_name": name, "drivers.*.first_name": name, "drivers.*.middle_name": name,
    "drivers.*.birth_date": pastDate, "drivers.*.license.series": licenseSeries,
    "drivers.*.license.number": sixDigits, "drivers.*.license.issued": pastDate, "drivers.*.experience_since": pastDate,
    "period.start_date": policyStart, "period.months": wholeNumber(3, 12),
  };

  function leaves(node, prefix, out) {
    for (const [key, value] of Object.entries(node)) {
      const path = prefix ? `${prefix}.${key}` : key;
      if (value !== null && typeof value === "object") leaves(value, path, out);
      else out.push([path, value]);
    }
    return out;
  }

  // Every problem of the body as [{path, message}], like the server's 422: each field's own
  // check first, then the rules between fields that passed (one message per field).
  function checkBody(body) {
    const found = new Map();
    const note = (path, message) => { if (!found.has(path)) found.set(path, message); };
    for (const [path, value] of leaves(body, "", [])) {
      const check = FIELD_CHECKS[path.replace(/^drivers\.\d+\./, "drivers.*.")];
      if (!check) continue;
      if (value === "") { note(path, "Заполните поле"); continue; }
      try { check(value); } catch (error) { if (error instanceof Invalid) note(path, error.message); else throw error; }
    }
    const ok = (path) => body !== undefined && !found.has(path) && get(body, path) !== undefined;
    for (const [path, message] of crossFieldProblems(body, ok)) note(path, message);
    return [...found].map(([path, message]) => ({ path, message }));
  }

  function get(node, path) {
    return path.split(".").reduce((at, key) => (at == null ? undefined : at[key]), node);
  }

  function crossFieldProblems(body, ok) {
    const problems = [];
    const vehicle = body.vehicle;
    const doc = vehicle.document;
    if (ok("vehicle.document.type")) {
      if (doc.type === "epts" && doc.series !== undefined) {
        problems.push(["vehicle.document.series", "У электронного ПТС серии нет"]);
      } else if (doc.type !== "epts" && doc.series === undefined) {
        problems.push(["vehicle.document.series", "Укажите серию СТС или ПТС"]);
      }
      const expected = doc.type === "epts" ? 15 : 6;
      if (ok("vehicle.document.number") && compact(doc.number).length !== expected) {
        problems.push(["vehicle.document.number", `${expected} цифр для этого документа`]);
      }
    }
    if (ok("vehicle.document.issued") && ok("vehicle.year") && doc.issued < `${vehicle.year - 1}-01-01`) {
      problems.push(["vehicle.document.issued", `Не раньше 01.01.${vehicle.year - 1} (за год до года выпуска)`]);
    }
    if (ok("owner.birth_date") && ok("owner.passport.issued")
        && body.owner.passport.issued < addYears(body.owner.birth_date, 14)) {
      problems.push(["owner.passport.issued", "Не раньше 14-летия собственника"]);
    }
    const drivers = body.drivers;
    if (drivers.length > reference.max_drivers) {
      problems.push(["drivers", `Не больше ${reference.max_drivers} водителей`]);
    } else if (body.unlimited_drivers && drivers.length) {
      problems.push(["drivers", "Без ограничений — значит без списка водителей"]);
    } else if (!body.unlimited_drivers && !drivers.length) {
      problems.push(["drivers", `Добавьте от 1 до ${reference.max_drivers} водителей или выберите «Без ограничений»`]);
    }
    const licences = new Map();
    drivers.forEach((driver, i) => {
      const at = `drivers.${i}`;
      if (ok(`${at}.birth_date`)) {
        if (ok("period.start_date") && addYears(driver.birth_date, 18) > body.period.start_date) {
          problems.push([`${at}.birth_date`, "Водителю должно быть 18 лет на дату начала полиса"]);
        }
        const sixteenth = addYears(driver.birth_date, 16);
        if (ok(`${at}.license.issued`) && driver.license.issued < sixteenth) {
          problems.push([`${at}.license.issued`, "Не раньше 16-летия водителя"]);
        }
        if (ok(`${at}.experience_since`) && driver.experience_since < sixteenth) {
          problems.push([`${at}.experience_since`, "Не раньше 16-летия водителя"]);
        }
      }
      if (ok(`${at}.license.series`) && ok(`${at}.license.number`)) {
        const key = `${translate(compact(driver.license.series), LATIN_LOOKALIKES, CYRILLIC_LOOKALIKES)} ${compact(driver.license.number)}`;
        if (licences.has(key)) problems.push([`${at}.license`, `То же удостоверение, что у водителя ${licences.get(key) + 1}`]);
        else licences.set(key, i);
      }
    });
    return problems;
  }

  // The server's 422 messages are English; show the common ones in Russian.
  const SERVER_MESSAGES = [
    [/^is required/, () => "Заполните поле"],
    [/^must not be empty$/, () => "Заполните поле"],
    [/^must be a date in YYYY-MM-DD format$/, () => "Дата в формате ДД.ММ.ГГГГ"],
    [/^must be a real calendar date$/, () => "Такой даты нет в календаре"],
    [/^must not be in the future$/, () => "Дата не может быть в будущем"],
    [/^must be between (\d+) and (\d+)$/, (m) => `От ${m[1]} до ${m[2]}`],
    [/^must be at most (\d+) characters$/, (m) => `Не длиннее ${m[1]} символов`],
    [/^the owner must be at least 18 years old$/, () => "Собственнику должно быть не меньше 18 лет"],
    [/^must be from tomorrow to (\d+) days ahead \((\S+) to (\S+)\)$/,
      (m) => `С ${ruDate(m[2])} по ${ruDate(m[3])} (не дальше ${m[1]} дней)`],
    [/^must be 17 characters/, () => "17 знаков: латинские буквы без I, O, Q и цифры"],
    [/^has an unknown region code$|^is not a known region code$/, () => "Такого кода региона нет"],
    [/^must be Cyrillic letters, with/, () => "Русскими буквами; между частями — один пробел, дефис или апостроф"],
    [/^must be (\d+) digits$/, (m) => `${m[1]} цифр`],
    [/^must be a letter, 3 digits/, () => "Буква, 3 цифры (не 000), 2 буквы и код региона; буквы А В Е К М Н О Р С Т У Х"],
    [/^the driver must be at least 18 years old/, () => "Водителю должно быть 18 лет на дату начала полиса"],
    [/^must not be before the driver's 16th birthday$/, () => "Не раньше 16-летия водителя"],
    [/^must not be before the owner's 14th birthday$/, () => "Не раньше 14-летия собственника"],
  ];
  function serverMessage(text) {
    for (const [regex, render] of SERVER_MESSAGES) {
      const match = regex.exec(text);
      if (match) return render(match);
    }
    return `Сервер: ${text}`;
  }

  // ---------- the form ----------

  const form = $("application-form");
  const driversList = $("drivers");

  function input(path) { return form.querySelector(`[data-path="${path}"]`); }
  function value(path) { const el = input(path); return el ? el.value.trim() : ""; }
  function numberOrText(text) { return /^\d{1,6}$/.test(text) ? Number(text) : text; }

  function driverCount() { return driversList.children.length; }

  function renumberDrivers() {
    [...driversList.children].forEach((item, i) => {
      item.querySelector(".driver-number").textContent = String(i + 1);
      for (const field of item.querySelectorAll(".field")) {
        const control = field.querySelector("[data-field]");
        const path = `drivers.${i}.${control.dataset.field}`;
        control.dataset.path = path;
        control.id = `f-${path}`;
        field.querySelector("label").htmlFor = control.id;
        const error = field.querySelector(".error");
        error.id = `err-${path}`;
        control.setAttribute("aria-describedby", error.id);
      }
      item.querySelector(".driver-license-error").id = `err-drivers.${i}.license`;
    });
    $("add-driver").disabled = $("f-unlimited_drivers").checked || driverCount() >= reference.max_drivers;
  }

  function addDriver(values) {
    const item = $("driver-template").content.firstElementChild.cloneNode(true);
    driversList.append(item);
    item.querySelector(".remove-driver").addEventListener("click", () => { item.remove(); renumberDrivers(); });
    item.querySelector(".copy-owner").addEventListener("click", () => {
      for (const key of ["last_name", "first_name", "middle_name", "birth_date"]) {
        item.querySelector(`[data-field="${key}"]`).value = value(`owner.${key}`);
      }
    });
    renumberDrivers();
    if (values) for (const [key, text] of Object.entries(values)) item.querySelector(`[data-field="${key}"]`).value = text;
    return item;
  }

  function syncControls() {
    const kind = $("f-vehicle.id_kind").value;
    $("f-vehicle.id_number").dataset.path = `vehicle.${kind}`;
    $("label-vehicle.id_number").textContent = { vin: "VIN *", body_number: "Номер кузова *", chassis_number: "Номер шасси *" }[kind];
    $("f-vehicle.plate").disabled = $("f-vehicle.no_plate").checked;
    $("f-vehicle.document.series").disabled = $("f-vehicle.document.type").value === "epts";
    const unlimited = $("f-unlimited_drivers").checked;
    driversList.hidden = unlimited;
    if (!unlimited && driverCount() === 0) addDriver();
    renumberDrivers();
    const start = $("f-period.start_date");
    start.min = addDays(reference.today, 1);
    start.max = addDays(reference.today, reference.policy_start_max_days);
    for (const el of form.querySelectorAll('input[type="date"]:not([data-path="period.start_date"])')) el.max = reference.today;
  }

  // The body exactly as the server takes it (API.md); empty optional fields are left out.
  function collectBody() {
    const optional = (path) => value(path) || undefined;
    const vehicle = {
      category: value("vehicle.category"), make: value("vehicle.make"), model: value("vehicle.model"),
      year: numberOrText(value("vehicle.year")), power_hp: numberOrText(value("vehicle.power_hp")),
      [$("f-vehicle.id_kind").value]: $("f-vehicle.id_number").value.trim(),
      plate: $("f-vehicle.no_plate").checked ? undefined : value("vehicle.plate"),
      purpose: value("vehicle.purpose"),
      document: {
        type: value("vehicle.document.type"),
        series: value("vehicle.document.type") === "epts" ? undefined : optional("vehicle.document.series"),
        number: value("vehicle.document.number"), issued: value("vehicle.document.issued"),
      },
    };
    const unlimited = $("f-unlimited_drivers").checked;
    const drivers = unlimited ? [] : [...driversList.children].map((_, i) => ({
      last_name: value(`drivers.${i}.last_name`), first_name: value(`drivers.${i}.first_name`),
      middle_name: optional(`drivers.${i}.middle_name`), birth_date: value(`drivers.${i}.birth_date`),
      license: { series: value(`drivers.${i}.license.series`), number: value(`drivers.${i}.license.number`),
                 issued: value(`drivers.${i}.license.issued`) },
      experience_since: value(`drivers.${i}.experience_since`),
    }));
    return JSON.parse(JSON.stringify({
      vehicle,
      owner: {
        last_name: value("owner.last_name"), first_name: value("owner.first_name"),
        middle_name: optional("owner.middle_name"), birth_date: value("owner.birth_date"),
        passport: { series: value("owner.passport.series"), number: value("owner.passport.number"),
                    issued: value("owner.passport.issued") },
        registration: { region_code: value("owner.registration.region_code"), city: value("owner.registration.city") },
      },
      drivers, unlimited_drivers: unlimited,
      period: { start_date: value("period.start_date"), months: numberOrText(value("period.months")) },
    }));
  }

  function clearErrors() {
    for (const el of form.querySelectorAll(".error")) el.textContent = "";
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  // Where a message for `path` goes: its own slot, else the nearest enclosing one
  // ("drivers.1.license" → the licence slot of driver 2); null means "use the banner".
  function errorSlot(path) {
    const aliases = { "vehicle.vin": "vehicle.id_number", "vehicle.body_number": "vehicle.id_number",
                      "vehicle.chassis_number": "vehicle.id_number" };
    let at = aliases[path] || path;
    while (at) {
      const slot = $(`err-${at}`);
      if (slot) return slot;
      at = at.includes(".") ? at.slice(0, at.lastIndexOf(".")) : "";
    }
    return null;
  }

  // Shows each problem beside its field; returns those that have no field on the page.
  function showFieldErrors(problems) {
    const unplaced = [];
    let first = null;
    for (const { path, message } of problems) {
      const slot = errorSlot(path);
      if (!slot) { unplaced.push({ path, message }); continue; }
      slot.textContent = slot.textContent ? `${slot.textContent}; ${message}` : message;
      const control = form.querySelector(`[aria-describedby~="${slot.id}"]`);
      if (control) { control.setAttribute("aria-invalid", "true"); first = first || control; }
      else first = first || slot;
    }
    if (first) {
      if (typeof first.focus === "function" && first.matches("input, select")) first.focus();
      first.scrollIntoView({ block: "center" });
    }
    return unplaced;
  }

  function showBanner(text) {
    const banner = $("banner");
    banner.textContent = text || "";
    banner.hidden = !text;
  }

  function fillSample() {
    const set = (path, text) => { input(path).value = text; };
    $("f-vehicle.id_kind").value = "vin";
    $("f-vehicle.no_plate").checked = false;
    $("f-unlimited_drivers").checked = false;
    syncControls();
    set("vehicle.category", "B"); set("vehicle.make", "Toyota"); set("vehicle.model", "Camry");
    set("vehicle.year", "2019"); set("vehicle.power_hp", "181"); set("vehicle.vin", "XW7BF4FK60S123456");
    set("vehicle.plate", "А123ВС777"); set("vehicle.purpose", "personal");
    set("vehicle.document.type", "sts"); syncControls();
    set("vehicle.document.series", "77ХХ"); set("vehicle.document.number", "123456");
    set("vehicle.document.issued", "2019-05-01");
    set("owner.last_name", "Иванов"); set("owner.first_name", "Иван"); set("owner.middle_name", "Иванович");
    set("owner.birth_date", "1985-03-14"); set("owner.passport.series", "4510");
    set("owner.passport.number", "123456"); set("owner.passport.issued", "2015-04-01");
    set("owner.registration.region_code", "77"); set("owner.registration.city", "Москва");
    driversList.replaceChildren();
    addDriver({ last_name: "Иванов", first_name: "Иван", middle_name: "Иванович", birth_date: "1985-03-14",
                "license.series": "7701", "license.number": "123456", "license.issued": "2005-06-01",
                experience_since: "2005-06-01" });
    set("period.start_date", addDays(reference.today, 7)); set("period.months", "12");
    clearErrors();
    showBanner("");
  }

  // A repeated submit of the same body (after a lost answer) reuses its Idempotency-Key,
  // so the server answers with the application it already has instead of making another.
  let lastSubmit = { text: "", key: "" };

  async function submit(event) {
    event.preventDefault();
    clearErrors();
    showBanner("");
    const body = collectBody();
    const problems = checkBody(body);
    if (problems.length) {
      const unplaced = showFieldErrors(problems);
      showBanner(unplaced.length ? unplaced.map((p) => p.message).join("; ") : "Проверьте выделенные поля.");
      return;
    }
    const text = JSON.stringify(body);
    if (text !== lastSubmit.text) lastSubmit = { text, key: crypto.randomUUID() };
    const button = $("submit");
    button.disabled = true;
    button.textContent = "Отправляем…";
    let response;
    let payload = null;
    try {
      response = await fetch("/api/v1/applications", {
        method: "POST", body: text,
        headers: { "Content-Type": "application/json", "Idempotency-Key": lastSubmit.key },
      });
      payload = await response.json().catch(() => null);
    } catch (error) {
      showBanner("Нет связи с сервером. Проверьте подключение и нажмите «Рассчитать цены» ещё раз.");
      restoreSubmit();
      return;
    }
    if (response.status === 201 && payload) {
      restoreSubmit();
      startResult(payload, clockSkew(response));
      return;
    }
    handleRefusal(response, payload);
  }

  function restoreSubmit(afterSeconds) {
    const button = $("submit");
    button.textContent = "Рассчитать цены";
    // After a 429 or 503 the button waits out Retry-After (at most a minute) before it works again.
    if (afterSeconds) setTimeout(() => { button.disabled = false; }, Math.min(afterSeconds, 60) * 1000);
    else button.disabled = false;
  }

  function retryAfter(response) {
    const seconds = Number(response.headers.get("Retry-After"));
    return Number.isFinite(seconds) && seconds > 0 ? seconds : 5;
  }

  function handleRefusal(response, payload) {
    const error = payload && payload.error ? payload.error : null;
    const status = response.status;
    if (status === 422 && error) {
      const unplaced = showFieldErrors(error.fields.map((f) => ({ path: f.path, message: serverMessage(f.message) })));
      const extra = unplaced.map((p) => p.message).join("; ");
      showBanner(`Сервер не принял заявку: проверьте выделенные поля.${extra ? ` ${extra}` : ""}`);
      restoreSubmit();
    } else if (status === 429) {
      const wait = retryAfter(response);
      showBanner(`Слишком много запросов с вашего адреса. Повторите через ${wait} с.`);
      restoreSubmit(wait);
    } else if (status === 503) {
      const wait = retryAfter(response);
      showBanner(`Сервис расчёта временно недоступен. Повторите через ${wait} с — заявка не потеряется, её просто ещё не приняли.`);
      restoreSubmit(wait);
    } else if (status === 413) {
      showBanner("Заявка слишком большая. Сократите текстовые поля.");
      restoreSubmit();
    } else {
      showBanner(`Сервер не принял заявку (код ${status}). Повторите позже.`);
      restoreSubmit();
    }
  }

  // How far the browser's clock is behind the server's, from the Date header (1 s precision).
  function clockSkew(response) {
    const serverNow = Date.parse(response.headers.get("Date") || "");
    return Number.isFinite(serverNow) ? serverNow - Date.now() : 0;
  }

  // ---------- the live result ----------

  let current = null;

  function startResult(created, skew) {
    stopResult();
    current = {
      created, skew, seen: new Set(), duplicates: 0, connections: 0, attempt: 0, socket: null,
      insurers: new Map(created.insurers.map((i) => [i.code, { code: i.code, name: i.name, status: "pending", reason: null, offer: null }])),
      complete: null, timers: { countdown: 0, reconnect: 0 }, cards: new Map(), rows: new Map(),
    };
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ created, skew }));
    form.hidden = true;
    showBanner("");
    const section = $("result");
    section.hidden = false;
    section.dataset.state = "live";
    $("offers").replaceChildren();
    $("insurers").replaceChildren();
    $("summary").textContent = "";
    $("connection").textContent = "";
    render();
    tick();
    current.timers.countdown = setInterval(tick, 500);
    $("result-title").focus();
    connect();
  }

  function stopResult() {
    if (!current) return;
    clearInterval(current.timers.countdown);
    clearTimeout(current.timers.reconnect);
    if (current.socket) { current.socket.onclose = null; current.socket.close(1000); }
    current = null;
  }

  function connect() {
    const state = current;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}${state.created.links.offers}?token=${encodeURIComponent(state.created.access_token)}`;
    const socket = new WebSocket(url);
    state.socket = socket;
    socket.onopen = () => {
      state.connections += 1;
      state.attempt = 0;
      $("result").dataset.connections = String(state.connections);
      $("connection").textContent = state.connections > 1 ? "Связь восстановлена." : "";
    };
    socket.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (error) { return; }
      if (state === current) handleEvent(event);
    };
    socket.onclose = () => {
      state.socket = null;
      if (state !== current || state.complete) return;
      scheduleReconnect(state);
    };
  }

  function scheduleReconnect(state) {
    // Exponential backoff with jitter, so that many pages do not return all at once
    // to an instance that has just restarted.
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** state.attempt);
    const delay = ceiling / 2 + Math.random() * ceiling / 2;
    state.attempt += 1;
    $("connection").textContent = `Связь прервалась. Переподключаемся через ${Math.ceil(delay / 1000)} с…`;
    state.timers.reconnect = setTimeout(() => { if (state === current) connect(); }, delay);
    if (remainingMs(state) < -REST_FALLBACK_AFTER_MS) pollOnce(state);
  }

  // Plain HTTP for the final state, when the socket cannot come back after the deadline.
  async function pollOnce(state) {
    try {
      const response = await fetch(state.created.links.self, {
        headers: { Authorization: `Bearer ${state.created.access_token}` },
      });
      if (response.status !== 200 || state !== current || state.complete) return;
      const view = await response.json();
      if (view.status !== "complete") return;
      for (const insurer of view.insurers) {
        const offer = view.offers.find((o) => o.insurer.code === insurer.code) || null;
        setInsurer(state, insurer.code, { name: insurer.name, status: insurer.status, reason: insurer.reason, offer });
      }
      const counts = { offered: 0, declined: 0, failed: 0, unavailable: 0, timed_out: 0 };
      for (const insurer of view.insurers) counts[insurer.status] += 1;
      finish(state, { offers: counts.offered, statuses: counts });
    } catch (error) {
      // Offline as well: the next reconnect attempt tries again.
    }
  }

  function handleEvent(event) {
    const state = current;
    if (!event || typeof event !== "object" || event.application_id !== state.created.id) return;
    if (state.seen.has(event.event_id)) {
      // A replay after a reconnect resends what we already have: drop it, by id.
      state.duplicates += 1;
      $("result").dataset.duplicatesDropped = String(state.duplicates);
      return;
    }
    if (event.event_id) state.seen.add(event.event_id);
    if (event.type === "offer") {
      setInsurer(state, event.insurer.code, { name: event.insurer.name, status: "offered", reason: null, offer: event.offer });
    } else if (event.type === "quote_status") {
      setInsurer(state, event.insurer.code, { status: event.status, reason: event.reason });
    } else if (event.type === "complete") {
      finish(state, event);
      return;
    } else {
      return; // progress events and anything newer: not ours to show (API.md)
    }
    render();
  }

  function setInsurer(state, code, change) {
    const known = state.insurers.get(code) || { code, name: code, status: "pending", reason: null, offer: null };
    state.insurers.set(code, { ...known, ...change, name: change.name || known.name });
  }

  function finish(state, complete) {
    state.complete = complete;
    clearInterval(state.timers.countdown);
    clearTimeout(state.timers.reconnect);
    render();
    const s = complete.statuses || {};
    const parts = [`${complete.offers} ${plural(complete.offers, "предложение", "предложения", "предложений")}`];
    if (s.declined) parts.push(`отказов: ${s.declined}`);
    if (s.failed) parts.push(`ошибок: ${s.failed}`);
    if (s.unavailable) parts.push(`недоступны: ${s.unavailable}`);
    if (s.timed_out) parts.push(`без ответа: ${s.timed_out}`);
    $("summary").textContent = `Расчёт завершён: ${parts.join(", ")}.${complete.offers ? " Лучшая цена — первая в списке." : ""}`;
    $("countdown").textContent = "";
    $("connection").textContent = "";
    $("result").dataset.state = "complete";
    sessionStorage.removeItem(STORAGE_KEY);
  }

  function plural(n, one, few, many) {
    const tens = n % 100;
    const units = n % 10;
    if (tens >= 11 && tens <= 14) return many;
    if (units === 1) return one;
    if (units >= 2 && units <= 4) return few;
    return many;
  }

  function remainingMs(state) {
    return Date.parse(state.created.deadline) - (Date.now() + state.skew);
  }

  function tick() {
    const state = current;
    if (!state || state.complete) return;
    const left = Math.ceil(remainingMs(state) / 1000);
    $("countdown").textContent = left > 0
      ? `Ждём ответы: осталось ${Math.floor(left / 60)}:${pad(left % 60, 2)}`
      : "Время ожидания вышло — собираем последние ответы…";
  }

  const money = new Intl.NumberFormat("ru-RU", { style: "currency", currency: "RUB", minimumFractionDigits: 2 });
  const moment = new Intl.DateTimeFormat("ru-RU", { dateStyle: "short", timeStyle: "short", timeZone: "Europe/Moscow" });

  function render() {
    const state = current;
    renderRows(state);
    renderCards(state);
  }

  function renderRows(state) {
    const body = $("insurers");
    for (const insurer of state.insurers.values()) {
      let row = state.rows.get(insurer.code);
      if (!row) {
        row = document.createElement("tr");
        row.dataset.insurer = insurer.code;
        row.append(document.createElement("th"), document.createElement("td"), document.createElement("td"));
        row.cells[0].scope = "row";
        body.append(row);
        state.rows.set(insurer.code, row);
      }
      row.dataset.status = insurer.status;
      row.cells[0].textContent = insurer.name;
      const detail = insurer.offer
        ? money.format(Number(insurer.offer.premium))
        : STATUS_REASON[insurer.status] || insurer.reason || "";
      row.title = insurer.reason && detail !== insurer.reason ? insurer.reason : "";
      const status = document.createElement("span");
      status.className = `status ${insurer.status}`;
      status.textContent = STATUS_TEXT[insurer.status] || insurer.status;
      const inline = document.createElement("span");
      inline.className = "reason-inline";
      inline.textContent = detail;
      row.cells[1].replaceChildren(status, inline);
      row.cells[2].textContent = detail;
    }
  }

  function renderCards(state) {
    const list = $("offers");
    const offered = [...state.insurers.values()].filter((i) => i.offer)
      .sort((a, b) => Number(a.offer.premium) - Number(b.offer.premium) || a.name.localeCompare(b.name, "ru"));
    offered.forEach((insurer, index) => {
      let card = state.cards.get(insurer.code);
      if (!card) {
        card = offerCard(insurer);
        state.cards.set(insurer.code, card);
      }
      card.querySelector(".best").textContent = index === 0 ? "Лучшая цена" : "";
      list.append(card); // append moves an existing card: the list stays sorted by price
    });
  }

  function offerCard(insurer) {
    const offer = insurer.offer;
    const card = document.createElement("li");
    card.className = "offer";
    card.dataset.insurer = insurer.code;
    card.dataset.premium = offer.premium;
    const title = document.createElement("h3");
    title.textContent = insurer.name;
    const best = document.createElement("span");
    best.className = "best";
    const price = document.createElement("p");
    price.className = "price";
    price.textContent = money.format(Number(offer.premium));
    const valid = document.createElement("p");
    valid.className = "valid";
    valid.textContent = `Цена действует до ${moment.format(new Date(offer.valid_until))} (МСК)`;
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = "Из чего складывается цена";
    const list = document.createElement("dl");
    for (const [key, label] of COEFFICIENTS) {
      if (!(key in (offer.coefficients || {}))) continue;
      const term = document.createElement("dt");
      term.textContent = label;
      const definition = document.createElement("dd");
      definition.textContent = String(offer.coefficients[key]).replace(".", ",");
      list.append(term, definition);
    }
    const formula = document.createElement("p");
    formula.className = "formula";
    formula.textContent = "Цена = ТБ × КТ × КБМ × КВС × КО × КМ × КС × КН, с округлением до копеек.";
    details.append(summary, list, formula);
    card.append(title, best, price, valid, details);
    return card;
  }

  // ---------- start ----------

  async function loadReference() {
    try {
      const response = await fetch("/api/v1/reference");
      if (response.ok) Object.assign(reference, await response.json());
    } catch (error) {
      // Offline or refused: the defaults above still check everything but region codes.
    }
  }

  function resume() {
    const saved = sessionStorage.getItem(STORAGE_KEY);
    if (!saved) return;
    try {
      const { created, skew } = JSON.parse(saved);
      startResult(created, skew || 0);
    } catch (error) {
      sessionStorage.removeItem(STORAGE_KEY);
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    form.addEventListener("submit", submit);
    $("fill-sample").addEventListener("click", fillSample);
    $("add-driver").addEventListener("click", () => {
      if (driverCount() < reference.max_drivers) addDriver().querySelector("input").focus();
    });
    for (const id of ["f-vehicle.id_kind", "f-vehicle.no_plate", "f-vehicle.document.type", "f-unlimited_drivers"]) {
      $(id).addEventListener("change", syncControls);
    }
    // A field is re-checked when the person leaves it, so mistakes show up before submitting.
    form.addEventListener("focusout", (event) => {
      const path = event.target.dataset && event.target.dataset.path;
      if (!path || !event.target.value) return;
      // Leaving for a button: a message appearing now would push that button away from
      // under the pointer and lose the click (submit checks every field anyway).
      if (event.relatedTarget instanceof Element && event.relatedTarget.closest("button")) return;
      const slot = errorSlot(path);
      const problem = checkBody(collectBody()).find((p) => p.path === path);
      if (slot) slot.textContent = problem ? problem.message : "";
      if (problem) event.target.setAttribute("aria-invalid", "true");
      else event.target.removeAttribute("aria-invalid");
    });
    $("new-calculation").addEventListener("click", () => {
      stopResult();
      sessionStorage.removeItem(STORAGE_KEY);
      $("result").hidden = true;
      $("result").dataset.state = "idle";
      form.reset();
      driversList.replaceChildren();
      syncControls();
      form.hidden = false;
      $("fill-sample").focus();
    });
    $("edit-application").addEventListener("click", () => {
      stopResult();
      sessionStorage.removeItem(STORAGE_KEY);
      $("result").hidden = true;
      $("result").dataset.state = "idle";
      form.hidden = false;
      $("submit").focus();
    });
    syncControls();
    await loadReference();
    syncControls();
    document.body.dataset.ready = "true";
    resume();
  });
})();
